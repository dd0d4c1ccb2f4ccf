"""The job queue: leases on a SQL table in the same database as the messages.

Wiring (``database`` is a ``pigeon.store.Database``)::

    queue = SqlJobQueue(database, clock)
"""

from pigeon.queue.sql import WAKE_BATCH, QueueDatabase, SqlJobQueue

__all__ = ["WAKE_BATCH", "QueueDatabase", "SqlJobQueue"]
