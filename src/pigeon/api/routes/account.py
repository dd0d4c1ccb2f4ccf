"""``/v1/account``: the calling tenant, and the secret that signs its callback URLs."""

from __future__ import annotations

import msgspec
from litestar import get

from pigeon.api.dependencies import CurrentCaller, Services
from pigeon.api.problems import problem_responses

TAGS = ["Account"]


class AccountResponse(msgspec.Struct, kw_only=True):
    """The tenant behind the API key."""

    tenant_id: str
    name: str
    default_region: str | None
    key_id: str
    key_mode: str
    key_role: str
    callback_secret: str


@get(
    "/account",
    operation_id="getAccount",
    tags=TAGS,
    summary="The calling tenant",
    description=(
        "The tenant and key behind the request, and `callback_secret`: the `whsec_` secret "
        "that signs events sent to a message's `callback_url` (Standard Webhooks)."
    ),
    responses=problem_responses("unauthorized"),
)
async def get_account(caller: CurrentCaller, services: Services) -> AccountResponse:
    """Describe the caller's account."""
    view = services.account(caller)
    return AccountResponse(
        tenant_id=view.tenant_id,
        name=view.name,
        default_region=view.default_region,
        key_id=view.key_id,
        key_mode=view.key_mode,
        key_role=view.key_role,
        callback_secret=view.callback_secret,
    )


ROUTES = [get_account]
