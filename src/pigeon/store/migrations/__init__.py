"""Alembic migrations of the store; run them with ``pigeon.store.migrate``."""
