"""The exception tree of Pigeon.

Every error the domain and the use cases raise derives from ``PigeonError`` and carries a stable
``code`` that the API turns into a problem+json response::

    PigeonError
    ├── ValidationError            422  the caller sent something we cannot accept
    │   ├── InvalidCursor          400  code=invalid_parameter (field cursor)
    │   ├── InvalidRecipient       422  code=invalid_recipient
    │   ├── InvalidSender          422  code=invalid_sender
    │   ├── InvalidBody            422  code=invalid_body / body_too_long
    │   └── IdempotencyMismatch    422  code=idempotency_key_reused
    ├── NotFound                   404  code=not_found (also for another tenant's ids)
    ├── Unauthorized               401  code=unauthorized
    ├── Forbidden                  403  code=forbidden
    ├── IllegalTransition               a status change the lifecycle forbids (a bug if it escapes)
    └── CarrierError                    raised by connectors, mapped at their boundary
        ├── TemporaryFailure            retry later, same or next route
        │   └── Throttled               the carrier asks us to slow down
        └── PermanentFailure            the message cannot be sent this way; its ``fault``
                                        says whether another route could (``ROUTE``) or
                                        no route can (``MESSAGE``)
"""

from __future__ import annotations

import enum


class PigeonError(Exception):
    """Base of every error Pigeon raises on purpose."""

    code: str = "error"
    status: int = 500

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.field = field


class ValidationError(PigeonError):
    """The caller's input cannot be accepted as it is."""

    code = "invalid_request"
    status = 422


class InvalidCursor(ValidationError):
    """A list's ``cursor`` is not a page's ``next_cursor``, or the message it points at is
    gone (deleted since that page was read): start the listing again."""

    code = "invalid_parameter"
    status = 400


class InvalidRecipient(ValidationError):
    """The destination is not a valid, dialable phone number."""

    code = "invalid_recipient"


class InvalidSender(ValidationError):
    """The sender id is not an allowed alphanumeric id, short code or phone number."""

    code = "invalid_sender"


class InvalidBody(ValidationError):
    """The message text is empty or longer than allowed."""

    code = "invalid_body"


class IdempotencyMismatch(ValidationError):
    """An idempotency key was reused with a different request body."""

    code = "idempotency_key_reused"


class NotFound(PigeonError):
    """The resource does not exist for this tenant."""

    code = "not_found"
    status = 404


class Unauthorized(PigeonError):
    """No valid credentials were presented."""

    code = "unauthorized"
    status = 401


class Forbidden(PigeonError):
    """The credentials are valid but do not allow this action."""

    code = "forbidden"
    status = 403


class IllegalTransition(PigeonError):
    """A status change that the message lifecycle forbids."""

    code = "illegal_transition"
    status = 409


class CarrierError(PigeonError):
    """A carrier refused or failed a request; connectors raise only these."""

    code = "carrier_error"
    status = 502


class TemporaryFailure(CarrierError):
    """The attempt failed but may succeed later (timeouts, outages, queue full)."""

    code = "carrier_temporary_failure"


class Throttled(TemporaryFailure):
    """The carrier asks us to slow down."""

    code = "carrier_throttled"


class Fault(enum.Enum):
    """Whose fault a permanent failure is, which decides whether failover may help."""

    #: This carrier or route cannot take the message (credentials, coverage, configuration):
    #: the next candidate may succeed.
    ROUTE = "route"
    #: The message itself cannot be sent (invalid or barred destination, content refused as
    #: such): every carrier would refuse it, so it fails without trying another one.
    MESSAGE = "message"


class PermanentFailure(CarrierError):
    """The carrier will never accept this message as it is.

    ``fault`` is ``Fault.ROUTE`` unless the connector knows the message itself is at fault:
    failing over costs one more attempt, while failing a message another carrier would have
    delivered loses it.
    """

    code = "carrier_rejected"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        field: str | None = None,
        fault: Fault = Fault.ROUTE,
    ) -> None:
        super().__init__(detail, code=code, field=field)
        self.fault = fault
