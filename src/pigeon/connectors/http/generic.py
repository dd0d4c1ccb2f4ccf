"""A carrier described by configuration: method, URL, body template, auth, answer and callbacks.

**Submit.** ``url`` and the string leaves of ``fields`` are templates with these
placeholders (``{{`` and ``}}`` stand for braces)::

    {to}          the destination, E.164 with +        {to_digits}   the same without +
    {from}        the sender, else default_from        {from_digits} the sender without +
    {body}        the whole text                       {segments}    the SMS count
    {message_id}  our id (msg_...)                      {encoding}    gsm7 or ucs2
    {callback_url} our receipts URL ("" without callback_base_url)
    {username} {password} {token}   the credentials, for carriers that take them in the
                  query or the body (put secrets in those fields, not in literals)

In ``url`` the values are percent-encoded. With ``method="GET"`` (or ``body_format="query"``)
``fields`` (flat) become query parameters; otherwise the body is ``fields`` as JSON (nested
objects and arrays allowed; a leaf that is exactly ``"{segments}"`` stays a number) or as a
form (flat). ``headers`` are sent as they are, plus the ``auth``: ``basic``
(``username``/``password``), ``bearer`` (``token``) or ``header`` (``token`` in the
``auth_header`` header).

A status in ``success_statuses`` is a success: the carrier id is the JSON value at ``id_path``
(dotted: ``messages.0.id``; missing or unreadable: ``http_bad_response``), or, with
``id_path=None``, our own message id (for carriers that take a client reference and report
on it). Other statuses are errors as in :mod:`.base`, with the carrier's code and text read at
``error_code_path`` / ``error_text_path``.

**Receipts** (``/v1/carriers/{id}/receipts``): ``receipt_format`` ``json`` (the body, or each
element of the array at ``receipt_items_path``) or ``form`` (body fields, then query
parameters, so GET callbacks with a query work too). The id, status and error are read at
``receipt_id_field``, ``receipt_status_field`` and ``receipt_error_field`` (dotted paths in
JSON); statuses go through ``receipt_status_map`` (case-insensitive; the default knows common
words, SMPP ``stat`` names and Kannel's numeric DLR types). A single report without id or
status is a 400; in a batch it is logged and skipped, like a status the map does not know.
**Inbound** (``/v1/carriers/{id}/inbound``) likewise, with the ``inbound_*`` settings.
Callbacks are answered ``callback_ok_status`` with ``callback_ok_body`` once the sinks have
them.

With ``callback_hmac_secret`` set, each callback must carry in ``callback_hmac_header`` the
HMAC (``callback_hmac_algorithm``, hex or base64, after ``callback_hmac_prefix``) of its raw
body keyed with the secret (anything else: 403).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote

from pigeon.connectors.http.base import (
    CallbackResult,
    CarrierCallback,
    HttpCarrierConnector,
    HttpConnectorSettings,
    InboundMessage,
    MoSink,
    basic_auth,
    check_http_url,
    international,
    lookup,
    scalar,
)
from pigeon.domain.messages import Message
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.ports import Clock, ReceiptSink

__all__ = [
    "DEFAULT_STATUS_MAP",
    "PLACEHOLDERS",
    "GenericHttpConnector",
    "GenericHttpSettings",
    "render",
]

log = logging.getLogger(__name__)

PLACEHOLDERS = frozenset(
    {
        "to",
        "to_digits",
        "from",
        "from_digits",
        "body",
        "segments",
        "message_id",
        "encoding",
        "callback_url",
        "username",
        "password",
        "token",
    }
)

_TOKEN = re.compile(r"\{\{|\}\}|\{(\w*)\}")

_R = ReceiptStatus
DEFAULT_STATUS_MAP: Mapping[str, ReceiptStatus] = MappingProxyType(
    {
        **dict.fromkeys(("delivered", "delivrd", "delivered_to_handset", "1"), _R.DELIVRD),
        **dict.fromkeys(("undelivered", "undeliv", "undeliverable", "failed", "2"), _R.UNDELIV),
        **dict.fromkeys(("rejected", "rejectd", "16"), _R.REJECTD),
        **dict.fromkeys(("expired",), _R.EXPIRED),
        **dict.fromkeys(("deleted", "canceled", "cancelled"), _R.DELETED),
        **dict.fromkeys(("accepted", "acceptd", "queued", "pending", "8"), _R.ACCEPTD),
        **dict.fromkeys(("sent", "sending", "enroute", "submitted", "buffered", "4"), _R.ENROUTE),
        **dict.fromkeys(("unknown",), _R.UNKNOWN),
    }
)
"""Receipt statuses by lower-case carrier word (Kannel DLR types 1, 2, 4, 8, 16 included)."""

_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def _placeholders(template: Any) -> set[str]:
    """The placeholder names used anywhere in ``template``."""
    if isinstance(template, str):
        return {m.group(1) for m in _TOKEN.finditer(template) if m.group(1) is not None}
    if isinstance(template, Mapping):
        return set().union(*(_placeholders(v) for v in template.values()))
    if isinstance(template, list | tuple):
        return set().union(*(_placeholders(v) for v in template))
    return set()


def render(template: Any, values: Mapping[str, Any], *, quote_values: bool = False) -> Any:
    """``template`` with its placeholders filled from ``values``.

    Strings are filled; mappings and sequences are rendered leaf by leaf; other values are
    kept. A string that is exactly one placeholder takes the value itself (a number stays a
    number), unless ``quote_values``, which percent-encodes every value (for URLs).
    """
    if isinstance(template, str):
        whole = _TOKEN.fullmatch(template)
        if whole is not None and whole.group(1) and not quote_values:
            return values[whole.group(1)]

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return match.group()[0]
            value = str(values[name])
            return quote(value, safe="") if quote_values else value

        return _TOKEN.sub(fill, template)
    if isinstance(template, Mapping):
        return {str(k): render(v, values, quote_values=quote_values) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [render(v, values, quote_values=quote_values) for v in template]
    return template


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericHttpSettings(HttpConnectorSettings):
    """A carrier described field by field; see the module docstring."""

    url: str = field(repr=False)
    fields: Mapping[str, Any] = field(repr=False)
    method: Literal["POST", "PUT", "GET"] = "POST"
    body_format: Literal["json", "form", "query"] = "json"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    auth: Literal["none", "basic", "bearer", "header"] = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    auth_header: str = "X-API-Key"
    default_from: str = ""
    success_statuses: frozenset[int] = frozenset({200, 201, 202})
    id_path: str | None = "id"
    error_code_path: str | None = None
    error_text_path: str | None = None

    receipt_format: Literal["json", "form"] = "json"
    receipt_items_path: str | None = None
    receipt_id_field: str = "id"
    receipt_status_field: str = "status"
    receipt_error_field: str | None = "error"
    receipt_status_map: Mapping[str, ReceiptStatus] = field(
        default_factory=lambda: DEFAULT_STATUS_MAP, repr=False
    )

    inbound_format: Literal["json", "form"] = "json"
    inbound_items_path: str | None = None
    inbound_from_field: str = "from"
    inbound_to_field: str = "to"
    inbound_text_field: str = "text"

    callback_hmac_secret: str | None = field(default=None, repr=False)
    callback_hmac_header: str = "X-Signature"
    callback_hmac_algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    callback_hmac_encoding: Literal["hex", "base64"] = "hex"
    callback_hmac_prefix: str = ""
    callback_ok_status: int = 200
    callback_ok_body: str = ""

    def __post_init__(self) -> None:
        HttpConnectorSettings.__post_init__(self)
        if self.method not in ("POST", "PUT", "GET"):
            raise ValueError("method must be POST, PUT or GET")
        if self.body_format not in ("json", "form", "query"):
            raise ValueError("body_format must be json, form or query")
        if self.auth not in ("none", "basic", "bearer", "header"):
            raise ValueError("auth must be none, basic, bearer or header")
        unknown = (_placeholders(self.url) | _placeholders(dict(self.fields))) - PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholders: {', '.join(repr(u) for u in sorted(unknown))}")
        check_http_url(render(self.url, dict.fromkeys(PLACEHOLDERS, "x"), quote_values=True), "url")
        flat = self.body_format != "json" or self.method == "GET"
        if flat and not all(isinstance(v, str | int) for v in self.fields.values()):
            raise ValueError("form and query fields must be flat: text or numbers")
        if self.auth == "basic" and not self.username:
            raise ValueError("basic auth needs a username")
        if self.auth in ("bearer", "header") and not self.token:
            raise ValueError(f"{self.auth} auth needs a token")
        if not self.success_statuses or not all(200 <= s < 300 for s in self.success_statuses):
            raise ValueError("success_statuses must be 2xx statuses")
        if self.callback_hmac_algorithm not in _HASHES:
            raise ValueError("callback_hmac_algorithm must be sha1, sha256 or sha512")


class GenericHttpConnector(HttpCarrierConnector[GenericHttpSettings]):
    """``ports.Connector`` for a carrier described by :class:`GenericHttpSettings`."""

    shape = "generic"

    def __init__(
        self,
        settings: GenericHttpSettings,
        receipt_sink: ReceiptSink,
        clock: Clock,
        mo_sink: MoSink | None = None,
    ) -> None:
        super().__init__(settings, receipt_sink, clock, mo_sink)
        self._statuses = {
            key.strip().lower(): status for key, status in settings.receipt_status_map.items()
        }

    async def _send(self, message: Message) -> str:
        settings = self.settings
        sender = message.sender or settings.default_from
        values: dict[str, Any] = {
            "to": message.to,
            "to_digits": message.to.removeprefix("+"),
            "from": sender,
            "from_digits": sender.removeprefix("+"),
            "body": message.body,
            "segments": message.segments,
            "message_id": message.id,
            "encoding": message.encoding,
            "callback_url": settings.callback_url("receipts") or "",
            "username": settings.username,
            "password": settings.password,
            "token": settings.token,
        }
        url = render(settings.url, values, quote_values=True)
        fields = render(dict(settings.fields), values)
        headers = dict(settings.headers)
        if settings.auth == "basic":
            headers["Authorization"] = basic_auth(settings.username, settings.password)
        elif settings.auth == "bearer":
            headers["Authorization"] = f"Bearer {settings.token}"
        elif settings.auth == "header":
            headers[settings.auth_header] = settings.token
        if settings.method == "GET" or settings.body_format == "query":
            pairs = [(k, str(v)) for k, v in fields.items()]
            answer = await self.client.request(settings.method, url, params=pairs, headers=headers)
        elif settings.body_format == "form":
            pairs = [(k, str(v)) for k, v in fields.items()]
            answer = await self.client.request(settings.method, url, form=pairs, headers=headers)
        else:
            answer = await self.client.request(
                settings.method, url, json_body=fields, headers=headers
            )
        if answer.status not in settings.success_statuses:
            data = answer.json_or_none()
            code = lookup(data, settings.error_code_path) if settings.error_code_path else None
            text = (
                scalar(lookup(data, settings.error_text_path)) if settings.error_text_path else None
            )
            raise self.client.error_for(answer, carrier_code=code, carrier_text=text)
        if settings.id_path is None:
            return message.id
        carrier_id = scalar(lookup(answer.json_or_none(), settings.id_path))
        if carrier_id is None:
            raise self.client.bad_response(f"no id at {settings.id_path!r}")
        return carrier_id

    # --- callbacks --------------------------------------------------------------------------

    async def handle_receipt_callback(self, request: CarrierCallback) -> CallbackResult:
        """Apply one report or a batch: ``callback_ok_status``, or 403 / 400 / 503."""
        settings = self.settings
        items = self._items(
            request, "receipt", settings.receipt_format, settings.receipt_items_path
        )
        if isinstance(items, CallbackResult):
            return items
        single = settings.receipt_format == "form" or settings.receipt_items_path is None
        now = self._clock.now()
        receipts: list[DeliveryReceipt] = []
        for item in items:
            carrier_id = self._read(request, item, settings.receipt_id_field)
            raw_status = self._read(request, item, settings.receipt_status_field)
            if carrier_id is None or raw_status is None:
                if single:
                    return self._refuse(
                        "receipt",
                        "no id or status",
                        CallbackResult.bad_request(
                            f"{settings.receipt_id_field} and {settings.receipt_status_field} "
                            "are required"
                        ),
                    )
                log.warning("%s: report without id or status skipped", self.id)
                continue
            status = self._status(raw_status)
            if status is None:
                log.info("%s: status %r of %s ignored", self.id, raw_status, carrier_id)
                continue
            error = (
                self._read(request, item, settings.receipt_error_field)
                if settings.receipt_error_field
                else None
            )
            if error is not None and not error.strip("0"):
                error = None
            receipts.append(DeliveryReceipt(self.id, carrier_id, status, error, at=now))
        return await self._deliver_receipts(receipts, self._ok())

    async def handle_inbound_callback(self, request: CarrierCallback) -> CallbackResult:
        """Pass on one inbound message or a batch: ``callback_ok_status``, or an error."""
        settings = self.settings
        items = self._items(
            request, "inbound", settings.inbound_format, settings.inbound_items_path
        )
        if isinstance(items, CallbackResult):
            return items
        single = settings.inbound_format == "form" or settings.inbound_items_path is None
        now = self._clock.now()
        messages: list[InboundMessage] = []
        for item in items:
            source = self._read(request, item, settings.inbound_from_field)
            destination = self._read(request, item, settings.inbound_to_field)
            if source is None or destination is None:
                if single:
                    return self._refuse(
                        "inbound",
                        "no from or to",
                        CallbackResult.bad_request(
                            f"{settings.inbound_from_field} and {settings.inbound_to_field} "
                            "are required"
                        ),
                    )
                log.warning("%s: inbound message without from/to skipped", self.id)
                continue
            text = self._text(request, item, settings.inbound_text_field)
            messages.append(
                InboundMessage(
                    connector_id=self.id,
                    source=international(source),
                    destination=international(destination),
                    text=text,
                    received_at=now,
                )
            )
        return await self._deliver_inbound(messages, self._ok())

    # --- internals --------------------------------------------------------------------------

    def _ok(self) -> CallbackResult:
        return CallbackResult.text(self.settings.callback_ok_status, self.settings.callback_ok_body)

    def _items(
        self, request: CarrierCallback, kind: str, body_format: str, items_path: str | None
    ) -> list[Any] | CallbackResult:
        """The reports of an authentic callback (``None`` items mean "read the form"), or
        the refusal."""
        if self.settings.callback_hmac_secret is not None and not self.signature_valid(request):
            return self._refuse(kind, "bad HMAC signature", CallbackResult.forbidden())
        try:
            if body_format == "form":
                request.form  # noqa: B018 -- parse now, so that a bad body is a 400
                return [None]
            data = request.json
        except ValueError as exc:
            return self._refuse(kind, str(exc), CallbackResult.bad_request(str(exc)))
        if items_path is None:
            items = [data]
        else:
            found = lookup(data, items_path)
            if not isinstance(found, list):
                return self._refuse(
                    kind,
                    f"no array at {items_path!r}",
                    CallbackResult.bad_request(f"an array is required at {items_path}"),
                )
            items = found
        if not all(isinstance(item, dict) for item in items):
            return self._refuse(
                kind, "reports are not objects", CallbackResult.bad_request("objects expected")
            )
        return items

    @staticmethod
    def _read(request: CarrierCallback, item: Any, name: str) -> str | None:
        """A field of a form callback (``item`` is ``None``) or a JSON report."""
        if item is None:
            value = request.field(name)
            return value.strip() or None if value is not None else None
        return scalar(lookup(item, name))

    @staticmethod
    def _text(request: CarrierCallback, item: Any, name: str) -> str:
        """A message text, untouched (spaces kept); empty when absent."""
        value = request.field(name) if item is None else lookup(item, name)
        return value if isinstance(value, str) else ""

    def _status(self, raw: str) -> ReceiptStatus | None:
        return self._statuses.get(raw.strip().lower())

    def signature_valid(self, request: CarrierCallback) -> bool:
        """Whether ``request`` carries the HMAC of its body in ``callback_hmac_header``."""
        settings = self.settings
        secret = settings.callback_hmac_secret
        presented = request.header(settings.callback_hmac_header)
        if secret is None or presented is None:
            return False
        presented = presented.strip()
        if not presented.startswith(settings.callback_hmac_prefix):
            return False
        presented = presented[len(settings.callback_hmac_prefix) :]
        digest = hmac.new(
            secret.encode(), request.body, _HASHES[settings.callback_hmac_algorithm]
        ).digest()
        if settings.callback_hmac_encoding == "hex":
            return hmac.compare_digest(digest.hex().encode(), presented.lower().encode())
        return hmac.compare_digest(base64.b64encode(digest), presented.encode())
