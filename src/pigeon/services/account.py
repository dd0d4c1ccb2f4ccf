"""Describe the calling tenant's account: who it is and how its callbacks are signed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pigeon.services.authenticate import Caller


@dataclass(frozen=True, slots=True)
class AccountView:
    """The tenant and key behind a request, plus the secret that signs its callback URLs."""

    tenant_id: str
    name: str
    default_region: str | None
    key_id: str
    key_mode: str
    key_role: str
    callback_secret: str


class DescribeAccount:
    """Tells a tenant about itself; the callback secret verifies ``callback_url`` deliveries."""

    def __init__(self, callback_secret: Callable[[str], str]) -> None:
        self._callback_secret = callback_secret

    def __call__(self, caller: Caller) -> AccountView:
        """The caller's account."""
        return AccountView(
            tenant_id=caller.tenant.id,
            name=caller.tenant.name,
            default_region=caller.tenant.default_region,
            key_id=caller.key.id,
            key_mode=caller.key.mode.value,
            key_role=caller.key.role.value,
            callback_secret=self._callback_secret(caller.tenant.id),
        )
