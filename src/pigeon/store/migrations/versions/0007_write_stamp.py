"""A stamp on every write of a message row, so a process can tell its copy is current.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

``messages.write_stamp`` is a random 63-bit number each write of the row (and of its parts)
sets afresh; an accepted message starts at 0. The worker keeps the messages it just read or
changed and, under the write lock, compares their stamps with the stored ones instead of
reading the whole rows again (ADR 25). A random stamp rather than a counter: a change written
in a transaction that then rolled back can never be mistaken for another process's later one.

A trigger stamps a row that something else updated without a new stamp (a hand-written fix,
a tool): nobody's copy survives such a write either. Pigeon's own writes always renew the
stamp, so the trigger's condition is all they cost. Pigeon writes parts only together with
their message, whose stamp that write renews.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column (every existing row gets 0) and, on SQLite, the trigger."""
    op.add_column(
        "messages",
        sa.Column("write_stamp", sa.BigInteger, nullable=False, server_default="0"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER messages_write_stamp AFTER UPDATE ON messages "
            "WHEN NEW.write_stamp = OLD.write_stamp "
            "BEGIN UPDATE messages SET write_stamp = random() WHERE id = NEW.id; END"
        )
    else:
        op.execute(
            "CREATE FUNCTION messages_write_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN NEW.write_stamp := floor(random() * 9.2e18)::bigint; RETURN NEW; END $$"
        )
        op.execute(
            "CREATE TRIGGER messages_write_stamp BEFORE UPDATE ON messages FOR EACH ROW "
            "WHEN (NEW.write_stamp = OLD.write_stamp) EXECUTE FUNCTION messages_write_stamp()"
        )


def downgrade() -> None:
    """Drop them."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS messages_write_stamp")
    else:
        op.execute("DROP TRIGGER IF EXISTS messages_write_stamp ON messages")
        op.execute("DROP FUNCTION IF EXISTS messages_write_stamp()")
    op.drop_column("messages", "write_stamp")
