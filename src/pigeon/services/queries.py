"""Read use cases: a tenant's messages and their events."""

from __future__ import annotations

from pigeon.domain.errors import NotFound
from pigeon.domain.messages import Message
from pigeon.ports import EventRecord, MessagePage, MessageQuery, MessageStore
from pigeon.services.authenticate import Caller

MAX_PAGE = 200


class ReadMessages:
    """Fetches one message or a page of them, always within the caller's tenant."""

    def __init__(self, store: MessageStore) -> None:
        self._store = store

    async def get(self, caller: Caller, message_id: str) -> tuple[Message, list[EventRecord]]:
        """The message and its events; ``NotFound`` for unknown ids and other tenants' ids."""
        message = await self._store.get_message(message_id, caller.tenant.id)
        if message is None:
            raise NotFound(f"No message {message_id!r}.", field="id")
        events = await self._store.events_of(message_id, caller.tenant.id)
        return message, events

    async def list(self, caller: Caller, query: MessageQuery) -> MessagePage:
        """A page of the tenant's messages, newest first."""
        limit = max(1, min(query.limit, MAX_PAGE))
        bounded = MessageQuery(
            status=query.status,
            to=query.to,
            created_from=query.created_from,
            created_to=query.created_to,
            limit=limit,
            cursor=query.cursor,
        )
        return await self._store.list_messages(caller.tenant.id, bounded)
