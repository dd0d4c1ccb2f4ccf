"""A carrier with Twilio's Messages API shape (Twilio itself, and the many look-alikes).

**Submit**: ``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json``, a form with
``To``, ``From`` (the message's sender, else ``default_from``) and/or ``MessagingServiceSid``,
``Body``, ``StatusCallback`` (our receipts URL, when ``callback_base_url`` is set) and
``ValidityPeriod`` (seconds left of the message's validity, 1-36000, when it has one), with
HTTP Basic auth ``account_sid:auth_token`` (or ``api_key_sid:api_key_secret``). A 2xx answer's
JSON ``sid`` is the carrier id; an error answer's JSON ``code`` becomes the suffix of our error
code (``http_4xx:21211``) and its ``message`` the detail.

**Status callbacks** (``/v1/carriers/{id}/receipts``): form posts with ``MessageSid``,
``MessageStatus`` and ``ErrorCode``, answered ``204``. **Inbound** (``/v1/carriers/{id}/
inbound``, set as the number's messaging webhook): form posts with ``From``, ``To``, ``Body``,
``MessageSid``, answered ``200`` with an empty TwiML ``<Response/>``.

Both are checked against ``X-Twilio-Signature``: the base64 HMAC-SHA1, keyed with the auth
token, of the full URL the carrier called followed by every form field's name and value, sorted
by name. The URL is tried as received, with its default port added or removed, and, when
``callback_base_url`` is set, rebuilt on it (for a proxy that changes scheme or host). JSON
bodies are signed on the URL alone, with a ``bodySHA256`` query parameter holding the body's
hex SHA-256. Statuses map as: queued/accepted/scheduled -> ACCEPTD, sending/sent -> ENROUTE,
delivered/read -> DELIVRD, undelivered/partially_delivered -> UNDELIV, failed (never left
Twilio) -> REJECTD, canceled -> DELETED; any other status is acknowledged and ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pigeon.connectors.http.base import (
    CallbackResult,
    CarrierCallback,
    HttpCarrierConnector,
    HttpConnectorSettings,
    InboundMessage,
    basic_auth,
    check_http_url,
    scalar,
    url_variants,
)
from pigeon.domain.errors import PermanentFailure
from pigeon.domain.messages import Message
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus

__all__ = ["TwilioStyleConnector", "TwilioStyleSettings", "twilio_signature"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_MAX_VALIDITY = 36000

STATUSES: Mapping[str, ReceiptStatus] = {
    "accepted": ReceiptStatus.ACCEPTD,
    "scheduled": ReceiptStatus.ACCEPTD,
    "queued": ReceiptStatus.ACCEPTD,
    "sending": ReceiptStatus.ENROUTE,
    "sent": ReceiptStatus.ENROUTE,
    "delivered": ReceiptStatus.DELIVRD,
    "read": ReceiptStatus.DELIVRD,
    "undelivered": ReceiptStatus.UNDELIV,
    "partially_delivered": ReceiptStatus.UNDELIV,
    "failed": ReceiptStatus.REJECTD,
    "canceled": ReceiptStatus.DELETED,
}
"""Twilio message statuses as receipt statuses."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TwilioStyleSettings(HttpConnectorSettings):
    """A Twilio-style account. ``auth_token`` signs callbacks and, without an API key,
    authenticates submits. A submit needs a sender: the message's, ``default_from`` or
    ``messaging_service_sid`` (both are sent when there are both)."""

    account_sid: str
    auth_token: str = field(repr=False)
    base_url: str = "https://api.twilio.com"
    api_key_sid: str | None = None
    api_key_secret: str | None = field(default=None, repr=False)
    default_from: str | None = None
    messaging_service_sid: str | None = None
    verify_signatures: bool = True
    """Refuse callbacks without a valid ``X-Twilio-Signature`` (turn off only in labs)."""
    message_fault_codes: frozenset[str] = frozenset({"21211", "21610", "21614"})
    """Error codes blaming the message: invalid ``To``, unsubscribed recipient, not a mobile
    number. Other 4xx refusals (permissions, geography) fail over to the next route."""

    def __post_init__(self) -> None:
        HttpConnectorSettings.__post_init__(self)
        if not self.account_sid or not self.auth_token:
            raise ValueError("account_sid and auth_token are required")
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("api_key_sid and api_key_secret go together")
        check_http_url(self.base_url, "base_url")

    @property
    def messages_url(self) -> str:
        """Where messages are created."""
        return f"{self.base_url.rstrip('/')}/2010-04-01/Accounts/{self.account_sid}/Messages.json"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, Sequence[str]]) -> str:
    """The ``X-Twilio-Signature`` of a request to ``url`` with form ``params``."""
    data = url + "".join(
        name + value for name in sorted(params) for value in sorted(set(params[name]))
    )
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class TwilioStyleConnector(HttpCarrierConnector[TwilioStyleSettings]):
    """``ports.Connector`` for a Twilio-style Messages API; see the module docstring."""

    shape = "twilio"

    async def _send(self, message: Message) -> str:
        settings = self.settings
        form: list[tuple[str, str]] = [("To", message.to)]
        sender = message.sender or settings.default_from
        if sender:
            form.append(("From", sender))
        if settings.messaging_service_sid:
            form.append(("MessagingServiceSid", settings.messaging_service_sid))
        if not sender and not settings.messaging_service_sid:
            raise PermanentFailure(
                f"{self.id}: no sender (From or MessagingServiceSid) for the message",
                code="http_no_sender",
            )
        form.append(("Body", message.body))
        callback = settings.callback_url("receipts")
        if callback:
            form.append(("StatusCallback", callback))
        if message.expires_at is not None:
            left = (message.expires_at - self._clock.now()).total_seconds()
            form.append(("ValidityPeriod", str(min(_MAX_VALIDITY, max(1, math.ceil(left))))))
        if settings.api_key_sid and settings.api_key_secret:
            auth = basic_auth(settings.api_key_sid, settings.api_key_secret)
        else:
            auth = basic_auth(settings.account_sid, settings.auth_token)
        answer = await self.client.request(
            "POST", settings.messages_url, form=form, headers={"Authorization": auth}
        )
        data = answer.json_or_none()
        if not 200 <= answer.status < 300:
            code = data.get("code") if isinstance(data, dict) else None
            text = scalar(data.get("message")) if isinstance(data, dict) else None
            raise self.client.error_for(answer, carrier_code=code, carrier_text=text)
        carrier_id = scalar(data.get("sid")) if isinstance(data, dict) else None
        if carrier_id is None:
            raise self.client.bad_response("no JSON sid")
        return carrier_id

    # --- callbacks --------------------------------------------------------------------------

    async def handle_receipt_callback(self, request: CarrierCallback) -> CallbackResult:
        """Verify and apply a status callback: 204, or 403 / 400 / 405 / 503."""
        refused = self._check(request, "receipt")
        if refused is not None:
            return refused
        carrier_id = request.field("MessageSid") or request.field("SmsSid")
        raw_status = request.field("MessageStatus") or request.field("SmsStatus")
        if not carrier_id or not raw_status:
            return self._refuse(
                "receipt",
                "no MessageSid or MessageStatus",
                CallbackResult.bad_request("MessageSid and MessageStatus are required"),
            )
        status = STATUSES.get(raw_status.strip().lower())
        if status is None:
            log.info("%s: status %r of %s ignored", self.id, raw_status, carrier_id)
            return CallbackResult(204)
        error = (request.field("ErrorCode") or "").strip()
        receipt = DeliveryReceipt(
            connector_id=self.id,
            carrier_message_id=carrier_id,
            status=status,
            error_code=error if error.strip("0") else None,
            at=self._clock.now(),
        )
        return await self._deliver_receipts([receipt], CallbackResult(204))

    async def handle_inbound_callback(self, request: CarrierCallback) -> CallbackResult:
        """Verify and pass on an inbound message: 200 with empty TwiML, or an error status."""
        refused = self._check(request, "inbound")
        if refused is not None:
            return refused
        source = request.field("From")
        destination = request.field("To")
        if not source or not destination:
            return self._refuse(
                "inbound", "no From or To", CallbackResult.bad_request("From and To are required")
            )
        inbound = InboundMessage(
            connector_id=self.id,
            source=source,
            destination=destination,
            text=request.field("Body") or "",
            received_at=self._clock.now(),
        )
        ok = CallbackResult(200, EMPTY_TWIML, "text/xml; charset=utf-8")
        return await self._deliver_inbound([inbound], ok)

    def _check(self, request: CarrierCallback, kind: str) -> CallbackResult | None:
        """The refusal for a callback that is not a readable, validly signed POST, if any."""
        if request.method != "POST":
            return self._refuse(kind, f"method {request.method}", CallbackResult.text(405, ""))
        try:
            request.form  # noqa: B018 -- parse now, so that a bad body is a 400
        except ValueError as exc:
            return self._refuse(kind, str(exc), CallbackResult.bad_request(str(exc)))
        if self.settings.verify_signatures and not self.signature_valid(request):
            return self._refuse(kind, "bad X-Twilio-Signature", CallbackResult.forbidden())
        return None

    def signature_valid(self, request: CarrierCallback) -> bool:
        """Whether ``request`` carries a valid ``X-Twilio-Signature`` (see the module doc)."""
        presented = request.header(SIGNATURE_HEADER)
        if not presented:
            return False
        token = self.settings.auth_token
        params: Mapping[str, Sequence[str]] = {}
        body_hash = request.query.get("bodySHA256")
        if request.content_type == "application/json" or body_hash:
            if not body_hash:
                return False
            digest = hashlib.sha256(request.body).hexdigest()
            if not hmac.compare_digest(digest, body_hash[0].lower()):
                return False
        else:
            params = request.form
        for url in self._signed_urls(request.url):
            expected = twilio_signature(token, url, params)
            if hmac.compare_digest(expected.encode(), presented.strip().encode()):
                return True
        return False

    def _signed_urls(self, url: str) -> list[str]:
        """The URLs the carrier may have signed: as received, and on ``callback_base_url``."""
        urls = url_variants(url)
        base = self.settings.callback_base_url
        if base is not None:
            parts = urlsplit(url)
            start = parts.path.find("/v1/carriers/")
            if start >= 0:
                rebuilt = base.rstrip("/") + parts.path[start:]
                if parts.query:
                    rebuilt += "?" + parts.query
                urls += [u for u in url_variants(rebuilt) if u not in urls]
        return urls
