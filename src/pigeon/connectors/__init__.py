"""Carrier connectors: SMPP, HTTP APIs and the built-in simulator."""
