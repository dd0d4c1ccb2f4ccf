"""Register, list and remove a tenant's webhook endpoints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from pigeon.domain.errors import NotFound, ValidationError
from pigeon.ports import Clock, IdFactory, WebhookEndpoint, WebhookStore
from pigeon.services.authenticate import Caller
from pigeon.services.events import EndpointDirectory
from pigeon.services.representation import WEBHOOK_STATUSES, event_type

KNOWN_EVENT_TYPES = frozenset(event_type(status) for status in WEBHOOK_STATUSES)


def check_url(url: str, field: str = "url") -> str:
    """An http(s) URL with a host, or ``ValidationError``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            "The URL must be an absolute http or https URL.", code="invalid_url", field=field
        )
    if len(url) > 2048:
        raise ValidationError("The URL is too long.", code="invalid_url", field=field)
    return url.strip()


class ManageWebhookEndpoints:
    """Webhook endpoints of the caller's tenant."""

    def __init__(
        self,
        webhooks: WebhookStore,
        ids: IdFactory,
        clock: Clock,
        directory: EndpointDirectory,
        new_secret: Callable[[], str],
    ) -> None:
        self._webhooks = webhooks
        self._ids = ids
        self._clock = clock
        self._directory = directory
        self._new_secret = new_secret

    async def create(
        self, caller: Caller, url: str, events: Sequence[str] | None
    ) -> WebhookEndpoint:
        """A new endpoint with a fresh signing secret (shown to the caller only now)."""
        wanted = tuple(dict.fromkeys(events or ()))
        unknown = [name for name in wanted if name not in KNOWN_EVENT_TYPES]
        if unknown:
            raise ValidationError(
                f"Unknown event types: {', '.join(unknown)}.",
                code="invalid_event_type",
                field="events",
            )
        endpoint = WebhookEndpoint(
            id=self._ids.new("whe"),
            tenant_id=caller.tenant.id,
            url=check_url(url),
            events=wanted,
            secret=self._new_secret(),
            created_at=self._clock.now(),
        )
        await self._webhooks.create_endpoint(endpoint)
        self._directory.forget(caller.tenant.id)
        return endpoint

    async def list(self, caller: Caller) -> list[WebhookEndpoint]:
        """The tenant's endpoints."""
        return await self._webhooks.list_endpoints(caller.tenant.id)

    async def get(self, caller: Caller, endpoint_id: str) -> WebhookEndpoint:
        """One endpoint of the tenant; ``NotFound`` otherwise."""
        endpoint = await self._webhooks.get_endpoint(endpoint_id, caller.tenant.id)
        if endpoint is None:
            raise NotFound(f"No webhook endpoint {endpoint_id!r}.", field="id")
        return endpoint

    async def delete(self, caller: Caller, endpoint_id: str) -> None:
        """Remove an endpoint of the tenant; ``NotFound`` otherwise."""
        if not await self._webhooks.delete_endpoint(endpoint_id, caller.tenant.id):
            raise NotFound(f"No webhook endpoint {endpoint_id!r}.", field="id")
        self._directory.forget(caller.tenant.id)
