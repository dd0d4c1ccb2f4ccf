"""A carrier with Infobip's SMS API shape (JSON in, JSON out, batched reports).

**Submit**: ``POST {base_url}/sms/2/text/advanced`` with ``Authorization: App <api_key>`` and::

    {"messages": [{"destinations": [{"to": "<digits, no +>"}], "from": "<sender>",
                   "text": "<body>", "notifyUrl": "<our receipts URL>",
                   "notifyContentType": "application/json", "validityPeriod": <minutes>}]}

(``from`` only with a sender, ``notifyUrl``/``notifyContentType`` only with
``callback_base_url``, ``validityPeriod`` only for a message with a validity, 1-2880 minutes).
The answer's ``messages[0].messageId`` is the carrier id; its ``status.groupName`` must not be
``REJECTED`` or ``UNDELIVERABLE`` (else ``PermanentFailure`` with code
``http_rejected:<status.name>``, or ``TemporaryFailure`` for the names in
``temporary_rejections``, such as running out of credit). An error answer's
``requestError.serviceException.messageId`` (or ``errorCode``) becomes the code suffix.

**Delivery reports** (``/v1/carriers/{id}/receipts``) come batched:
``{"results": [{"messageId", "status": {"groupName", "name"}, "error": {"id", "name"}}, ...]}``;
every result becomes one receipt (PENDING -> ENROUTE, DELIVERED -> DELIVRD, UNDELIVERABLE ->
UNDELIV, EXPIRED -> EXPIRED, REJECTED -> REJECTD), with the error's name (or id) as error
code unless it is ``NO_ERROR``/0. Results without an id or with another group are logged
and skipped. **Inbound** (``/v1/carriers/{id}/inbound``): ``{"results": [{"from", "to",
"text", "messageId", "receivedAt"}, ...]}``; numbers of 8+ digits get their ``+`` back.
Both are answered ``200`` once the sinks have everything.

Infobip does not sign its callbacks. With ``callback_secret`` set, a callback must present it
in the ``callback_secret_header`` header or, when ``callback_secret_param`` is set, in that
query parameter, which is then added to the ``notifyUrl`` we send (anything else: 403).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from pigeon.connectors.http.base import (
    CallbackResult,
    CarrierCallback,
    HttpCarrierConnector,
    HttpConnectorSettings,
    InboundMessage,
    check_http_url,
    international,
    lookup,
    scalar,
    secret_matches,
)
from pigeon.domain.errors import Fault, PermanentFailure, TemporaryFailure
from pigeon.domain.messages import Message
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus

__all__ = ["InfobipStyleConnector", "InfobipStyleSettings"]

log = logging.getLogger(__name__)

_MAX_VALIDITY_MINUTES = 2880

GROUPS: Mapping[str, ReceiptStatus] = {
    "PENDING": ReceiptStatus.ENROUTE,
    "ACCEPTED": ReceiptStatus.ACCEPTD,
    "DELIVERED": ReceiptStatus.DELIVRD,
    "UNDELIVERABLE": ReceiptStatus.UNDELIV,
    "EXPIRED": ReceiptStatus.EXPIRED,
    "REJECTED": ReceiptStatus.REJECTD,
}
"""Infobip status groups as receipt statuses."""

_REFUSED_GROUPS = frozenset({"REJECTED", "UNDELIVERABLE"})


@dataclass(frozen=True, slots=True, kw_only=True)
class InfobipStyleSettings(HttpConnectorSettings):
    """An Infobip-style account: its personal ``base_url`` and an API key."""

    base_url: str
    api_key: str = field(repr=False)
    default_from: str | None = None
    callback_secret: str | None = field(default=None, repr=False)
    # S105: a header name, not a secret.
    callback_secret_header: str = "X-Callback-Secret"  # noqa: S105
    callback_secret_param: str | None = None
    temporary_rejections: frozenset[str] = frozenset({"REJECTED_NOT_ENOUGH_CREDITS"})
    """Submit-time rejections that concern our account, not the message: retried/re-routed."""
    message_fault_codes: frozenset[str] = frozenset(
        {"REJECTED_DESTINATION", "REJECTED_INVALID_DESTINATION", "REJECTED_DND"}
    )
    """Rejections (``status.name``) that blame the message: it fails without re-routing."""

    def __post_init__(self) -> None:
        HttpConnectorSettings.__post_init__(self)
        if not self.api_key:
            raise ValueError("api_key is required")
        check_http_url(self.base_url, "base_url")
        if self.callback_secret_param is not None and self.callback_secret is None:
            raise ValueError("callback_secret_param needs a callback_secret")

    @property
    def messages_url(self) -> str:
        """Where messages are sent."""
        return f"{self.base_url.rstrip('/')}/sms/2/text/advanced"

    def notify_url(self) -> str | None:
        """The receipts URL given to the carrier (with the secret parameter, if configured)."""
        url = self.callback_url("receipts")
        if url is None or self.callback_secret_param is None or self.callback_secret is None:
            return url
        return f"{url}?{urlencode({self.callback_secret_param: self.callback_secret})}"


class InfobipStyleConnector(HttpCarrierConnector[InfobipStyleSettings]):
    """``ports.Connector`` for an Infobip-style SMS API; see the module docstring."""

    shape = "infobip"

    async def _send(self, message: Message) -> str:
        settings = self.settings
        item: dict[str, Any] = {"destinations": [{"to": message.to.removeprefix("+")}]}
        sender = message.sender or settings.default_from
        if sender:
            item["from"] = sender
        item["text"] = message.body
        notify = settings.notify_url()
        if notify:
            item["notifyUrl"] = notify
            item["notifyContentType"] = "application/json"
        if message.expires_at is not None:
            left = (message.expires_at - self._clock.now()).total_seconds() / 60
            item["validityPeriod"] = min(_MAX_VALIDITY_MINUTES, max(1, math.ceil(left)))
        answer = await self.client.request(
            "POST",
            settings.messages_url,
            json_body={"messages": [item]},
            headers={"Authorization": f"App {settings.api_key}"},
        )
        data = answer.json_or_none()
        if not 200 <= answer.status < 300:
            code = lookup(data, "requestError.serviceException.messageId") or lookup(
                data, "errorCode"
            )
            text = scalar(
                lookup(data, "requestError.serviceException.text") or lookup(data, "description")
            )
            raise self.client.error_for(answer, carrier_code=code, carrier_text=text)
        result = lookup(data, "messages.0")
        carrier_id = scalar(lookup(result, "messageId"))
        if carrier_id is None:
            raise self.client.bad_response("no messages[0].messageId")
        group = (scalar(lookup(result, "status.groupName")) or "").upper()
        if group in _REFUSED_GROUPS:
            name = scalar(lookup(result, "status.name")) or group
            description = scalar(lookup(result, "status.description")) or name
            detail = f"{self.id}: the carrier refused the message: {description}"
            code = f"http_rejected:{name}"
            if name in settings.temporary_rejections:
                raise TemporaryFailure(detail, code=code)
            fault = Fault.MESSAGE if name in settings.message_fault_codes else Fault.ROUTE
            raise PermanentFailure(detail, code=code, fault=fault)
        return carrier_id

    # --- callbacks --------------------------------------------------------------------------

    async def handle_receipt_callback(self, request: CarrierCallback) -> CallbackResult:
        """Apply a batch of delivery reports: 200, or 403 / 400 / 405 / 503."""
        results = self._results(request, "receipt")
        if isinstance(results, CallbackResult):
            return results
        now = self._clock.now()
        receipts: list[DeliveryReceipt] = []
        for result in results:
            carrier_id = scalar(lookup(result, "messageId"))
            group = (scalar(lookup(result, "status.groupName")) or "").upper()
            status = GROUPS.get(group)
            if carrier_id is None or status is None:
                log.warning(
                    "%s: report skipped (messageId %r, group %r)", self.id, carrier_id, group
                )
                continue
            receipts.append(
                DeliveryReceipt(self.id, carrier_id, status, _error_code(result), at=now)
            )
        return await self._deliver_receipts(receipts, CallbackResult(200))

    async def handle_inbound_callback(self, request: CarrierCallback) -> CallbackResult:
        """Pass on a batch of inbound messages: 200, or 403 / 400 / 405 / 503."""
        results = self._results(request, "inbound")
        if isinstance(results, CallbackResult):
            return results
        now = self._clock.now()
        messages: list[InboundMessage] = []
        for result in results:
            source = scalar(lookup(result, "from"))
            destination = scalar(lookup(result, "to"))
            if source is None or destination is None:
                log.warning("%s: inbound message without from/to skipped", self.id)
                continue
            text = lookup(result, "text")
            messages.append(
                InboundMessage(
                    connector_id=self.id,
                    source=international(source),
                    destination=international(destination),
                    text=text if isinstance(text, str) else "",
                    received_at=now,
                )
            )
        return await self._deliver_inbound(messages, CallbackResult(200))

    def _results(self, request: CarrierCallback, kind: str) -> list[Any] | CallbackResult:
        """The ``results`` array of an authentic JSON POST, or the refusal."""
        if request.method != "POST":
            return self._refuse(kind, f"method {request.method}", CallbackResult.text(405, ""))
        settings = self.settings
        if settings.callback_secret is not None:
            presented = request.header(settings.callback_secret_header)
            if presented is None and settings.callback_secret_param is not None:
                values = request.query.get(settings.callback_secret_param)
                presented = values[0] if values else None
            if not secret_matches(settings.callback_secret, presented):
                return self._refuse(kind, "wrong or missing secret", CallbackResult.forbidden())
        try:
            results = lookup(request.json, "results")
        except ValueError as exc:
            return self._refuse(kind, str(exc), CallbackResult.bad_request(str(exc)))
        if not isinstance(results, list):
            return self._refuse(
                kind, "no results array", CallbackResult.bad_request("a results array is required")
            )
        return results


def _error_code(result: Any) -> str | None:
    """The error of a report, unless it says there is none."""
    name = scalar(lookup(result, "error.name"))
    number = scalar(lookup(result, "error.id"))
    if name is not None and name.upper() != "NO_ERROR":
        return name
    if name is None and number is not None and number != "0":
        return number
    return None
