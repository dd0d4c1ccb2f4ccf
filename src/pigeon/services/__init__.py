"""Use cases: one verb per module, depending only on ports and the domain."""
