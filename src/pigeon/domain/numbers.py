"""The numbers inventory: which tenant owns which long code, short code or sender id.

Replies (mobile-originated messages) go to the tenant that owns the number they were sent to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pigeon.domain.addressing import SenderKind, parse_sender
from pigeon.domain.errors import ValidationError


@dataclass(frozen=True, slots=True)
class OwnedNumber:
    """A number (E.164 long code, short code or alphanumeric id) and its owning tenant."""

    value: str
    tenant_id: str
    kind: SenderKind
    created_at: datetime


def normalise_number(raw: str) -> tuple[str, SenderKind]:
    """The inventory form of a number: E.164 for long codes, digits for short codes.

    Raises ``ValidationError`` (code ``invalid_number``) for anything else.
    """
    try:
        sender = parse_sender(raw)
    except ValidationError as exc:
        raise ValidationError(exc.detail, code="invalid_number", field="number") from exc
    return sender.value, sender.kind


def inbound_destination_forms(destination: str) -> tuple[str, ...]:
    """The inventory keys a carrier's destination address may stand for.

    Carriers send the number we own with or without ``+`` and sometimes with a leading ``00``.
    """
    text = destination.strip()
    digits = text.lstrip("+")
    if digits.startswith("00"):
        digits = digits[2:]
    forms = [text]
    if digits.isdigit():
        forms.extend([digits, "+" + digits])
    return tuple(dict.fromkeys(forms))
