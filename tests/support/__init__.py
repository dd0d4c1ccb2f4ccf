"""Shared test support code (harnesses, not fakes of our store)."""
