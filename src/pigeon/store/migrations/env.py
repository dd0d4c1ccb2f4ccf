"""Alembic environment: runs on the connection ``pigeon.store.migrate`` hands over.

``migrate()`` opens the connection, takes the migration lock and the transaction, and puts the
connection in ``config.attributes["connection"]``; this script only runs the revisions on it.
With ``alembic --sql`` (offline mode) it renders the SQL for ``sqlalchemy.url`` instead.
"""

from __future__ import annotations

from alembic import context

from pigeon.store.tables import compared_on, metadata

config = context.config
connection = config.attributes.get("connection")

if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif connection is None:
    raise RuntimeError("run migrations with pigeon.store.migrate(url), which opens the connection")
else:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by rebuilding them; batch mode does that for every migration.
        render_as_batch=True,
        compare_type=True,
        # Autogenerate compares only what tables.py builds on this database (ADR 35).
        include_object=compared_on(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()
