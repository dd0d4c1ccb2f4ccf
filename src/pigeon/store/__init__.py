"""The store: SQLAlchemy Core on SQLite (embedded) or PostgreSQL (scale-out).

Wiring::

    await migrate(url)                        # schema up to date (idempotent)
    database = await connect(url)             # engines + the group-commit writer
    messages = SqlMessageStore(database, clock)
    accounts = SqlAccountStore(database)
    webhooks = SqlWebhookStore(database)
    parts = SqlPartStore(database)            # SMPP customers' long messages
    ...
    await database.close()                    # drains the writer, closes connections
"""

from pigeon.store.accounts import SqlAccountStore
from pigeon.store.connectors import SqlConnectorStore
from pigeon.store.database import Database, connect, normalise_url
from pigeon.store.messages import SqlMessageStore, normalise_carrier_id
from pigeon.store.migrate import current_revision, head_revision, migrate
from pigeon.store.numbers import SqlNumberStore
from pigeon.store.parts import SqlPartStore
from pigeon.store.webhooks import SqlWebhookStore
from pigeon.store.writer import Writer, WriterClosedError, WriterStats

__all__ = [
    "Database",
    "SqlAccountStore",
    "SqlConnectorStore",
    "SqlMessageStore",
    "SqlNumberStore",
    "SqlPartStore",
    "SqlWebhookStore",
    "Writer",
    "WriterClosedError",
    "WriterStats",
    "connect",
    "current_revision",
    "head_revision",
    "migrate",
    "normalise_carrier_id",
    "normalise_url",
]
