"""What every HTTP carrier connector shares: settings, the HTTP client, callbacks.

**Submitting.** :class:`HttpCarrierClient` owns one ``aiohttp.ClientSession`` per connector,
opened in ``start()`` and closed in ``stop()``. Each request waits for a slot among
``max_in_flight`` and, when ``throughput_per_second`` is set, for a token of a
:class:`TokenBucket`. Redirects are not followed, cookies are not kept and at most
``max_response_bytes`` of an answer are read. Failures are translated here, once, for every
shape (``code`` is the class below, followed by ``:<carrier code>`` when the carrier's answer
names one, as in ``http_4xx:21211``; the part before the colon is the stable class):

====================================  ======================  =================================
what happened                         raised                  ``code``
====================================  ======================  =================================
no answer within ``timeout``          ``TemporaryFailure``    ``http_timeout``
connection refused, reset, DNS...     ``TemporaryFailure``    ``http_connection``
HTTP 5xx                              ``TemporaryFailure``    ``http_5xx``
HTTP 429                              ``Throttled``           ``http_429``
HTTP 401 / 403 (our credentials)      ``TemporaryFailure``    ``http_auth`` (see below)
HTTP 408                              ``TemporaryFailure``    ``http_timeout``
any other HTTP 4xx                    ``PermanentFailure``    ``http_4xx``
a success we cannot read              ``TemporaryFailure``    ``http_bad_response``
another status (1xx, 3xx, odd 2xx)    ``TemporaryFailure``    ``http_unexpected_status``
connector not started or stopping     ``TemporaryFailure``    ``http_not_started``
====================================  ======================  =================================

401 and 403 mean the carrier refused *our* credentials, not the message: every message would
fail the same way, so they are temporary by default (the dispatcher retries or re-routes) and
``auth_failure_permanent=True`` makes them permanent. After a timeout, a dropped connection or
an unreadable success the carrier may have taken the message, so a retry can duplicate it
(at-least-once, as DESIGN.md says).

A 429 (or a 503 with ``Retry-After``) pauses new submits for the ``Retry-After`` time
(delay-seconds or an HTTP date; ``throttle_pause_default`` when absent, at most
``throttle_pause_max``). During a pause, a submit waits it out when at most
``throttle_wait_max`` seconds remain and otherwise raises ``Throttled`` (``http_429``) at once,
without calling the carrier.

**One carrier id per message.** HTTP carriers take the whole text in one request, split it
themselves and report one receipt per message, so ``submit`` returns a single carrier id; the
dispatcher then records the message as one part, which is what those receipts refer to.

**Callbacks.** The REST layer turns a carrier's request to ``/v1/carriers/{connector_id}/
receipts`` or ``.../inbound`` into a :class:`CarrierCallback` and answers with the
:class:`CallbackResult` that ``handle_receipt_callback`` / ``handle_inbound_callback`` return.
Receipts reach the ``receipt_sink`` (and replies the ``mo_sink``) *before* the 2xx is
returned; if a sink raises, the answer is 503 so the carrier sends the callback again.
A bad signature or secret gives 403 and nothing reaches a sink; a body we cannot read, 400.

**Secrets** (passwords, tokens, API keys, callback secrets) are ``repr=False`` in settings and
never appear in logs or error details; URLs are reported by host only, since some carriers take
credentials in the query string.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import dataclasses
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from pigeon.connectors.pacing import TokenBucket
from pigeon.connectors.smpp_client import InboundMessage, MoSink
from pigeon.domain.errors import (
    CarrierError,
    Fault,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
)
from pigeon.domain.messages import Message
from pigeon.domain.receipts import DeliveryReceipt
from pigeon.ports import Clock, ReceiptSink, SubmitResult

if TYPE_CHECKING:
    # aiohttp (about 9 MB) is imported when a connector opens its session: the processes of a
    # gateway without HTTP carriers never load it.
    import aiohttp

__all__ = [
    "USER_AGENT",
    "BadCallback",
    "CallbackResult",
    "CarrierCallback",
    "HttpAnswer",
    "HttpCarrierClient",
    "HttpCarrierConnector",
    "HttpConnectorSettings",
    "InboundMessage",
    "MoSink",
    "TokenBucket",
    "basic_auth",
    "check_http_url",
    "international",
    "lookup",
    "retry_after_seconds",
    "scalar",
    "secret_matches",
    "short",
    "url_variants",
]

log = logging.getLogger(__name__)

USER_AGENT = "Pigeon-Carrier/1"

_MAX_DETAIL = 200
_MISSING: Any = object()


def short(text: str, limit: int = _MAX_DETAIL) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _carrier_code(value: object) -> str | None:
    """A carrier's error code made safe for a ``code`` suffix (word characters, <= 64)."""
    if value is None or isinstance(value, dict | list) or value == "":
        return None
    return re.sub(r"[^\w.-]", "_", str(value).strip())[:64] or None


def international(number: str) -> str:
    """``+`` and the digits for a bare international number (8+ digits); others unchanged.

    HTTP carriers often write MSISDNs as digits without ``+``; short codes keep their form.
    """
    number = number.strip()
    return f"+{number}" if number.isdigit() and len(number) >= 8 else number


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` in parsed JSON (``messages.0.id``); ``None`` if absent.

    Keys index objects, integers index arrays; an empty path is ``data`` itself.
    """
    current = data
    for key in path.split(".") if path else ():
        if isinstance(current, dict):
            current = current.get(key, _MISSING)
        elif isinstance(current, list) and re.fullmatch(r"-?\d+", key):
            index = int(key)
            current = current[index] if -len(current) <= index < len(current) else _MISSING
        else:
            return None
        if current is _MISSING:
            return None
    return current


def scalar(value: Any) -> str | None:
    """A JSON scalar as text (``None`` for null, objects, arrays and empty strings)."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for (delay-seconds, decimals tolerated, or an
    HTTP date compared with ``now``); ``None`` when absent or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConnectorSettings:
    """What every HTTP carrier connector is configured with. Times are in seconds.

    ``callback_base_url`` is Pigeon's public base URL as the carrier reaches it (for instance
    ``https://sms.example.com``): receipts are asked for at
    ``{callback_base_url}/v1/carriers/{id}/receipts``. Without it, no receipt URL is sent and
    the carrier must be configured with one out of band.
    """

    id: str
    callback_base_url: str | None = None
    timeout: float = 15.0
    """Bound on one whole request (connect, send, answer)."""
    connect_timeout: float = 5.0
    max_in_flight: int = 20
    """Requests to the carrier awaiting their answer at once, at most."""
    throughput_per_second: float | None = None
    """Submits per second, at most (a token bucket with a tenth of a second of burst)."""
    throttle_pause_default: float = 1.0
    """Pause after a 429 that carries no ``Retry-After``."""
    throttle_pause_max: float = 300.0
    throttle_wait_max: float = 2.0
    """A submit during a pause waits it out if at most this much remains, else fails fast."""
    auth_failure_permanent: bool = False
    """401/403 raise ``PermanentFailure`` instead of ``TemporaryFailure`` (``http_auth``)."""
    message_fault_codes: frozenset[str] = frozenset()
    """Carrier error codes of a 4xx answer that blame the message (an invalid destination):
    such a message fails at once; any other permanent refusal fails over to the next route."""
    drain_timeout: float = 5.0
    """On stop: how long requests in flight may take to finish before the session closes."""
    max_response_bytes: int = 1 << 20
    trust_env: bool = False
    """Use the environment's proxy settings (``HTTPS_PROXY``...) to reach the carrier."""

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("id must not be empty")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be positive")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if self.throughput_per_second is not None and self.throughput_per_second <= 0:
            raise ValueError("throughput_per_second must be positive (or None: unlimited)")
        if self.throttle_pause_default < 0 or self.throttle_pause_max < 0:
            raise ValueError("throttle pauses must not be negative")
        if self.throttle_wait_max < 0 or self.drain_timeout < 0:
            raise ValueError("throttle_wait_max and drain_timeout must not be negative")
        if self.max_response_bytes < 1024:
            raise ValueError("max_response_bytes must be at least 1024")
        if self.callback_base_url is not None:
            check_http_url(self.callback_base_url, "callback_base_url")

    def callback_url(self, kind: Literal["receipts", "inbound"]) -> str | None:
        """Our public URL for the carrier's receipts or inbound messages, if we know it."""
        if self.callback_base_url is None:
            return None
        return f"{self.callback_base_url.rstrip('/')}/v1/carriers/{self.id}/{kind}"


def check_http_url(url: str, name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL with a host")


SettingsT = TypeVar("SettingsT", bound=HttpConnectorSettings)


# --- pacing ---------------------------------------------------------------------------------


# --- the client -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A carrier's HTTP answer: status, headers and (at most ``max_response_bytes`` of) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` if it is not."""
        return json.loads(self.body)

    def json_or_none(self) -> Any:
        """The body as JSON, or ``None`` if it is not JSON."""
        try:
            return self.json()
        except ValueError:
            return None


class HttpCarrierClient:
    """The HTTP side of one connector: session, concurrency, throughput, pauses, errors."""

    @property
    def pacing(self) -> TokenBucket | None:
        """The pacer of the requests (``None`` without ``throughput_per_second``)."""
        return self._bucket

    def __init__(self, settings: HttpConnectorSettings, *, user_agent: str = USER_AGENT) -> None:
        self.settings = settings
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._bucket: TokenBucket | None = (
            TokenBucket(settings.throughput_per_second) if settings.throughput_per_second else None
        )
        self._paused_until = 0.0
        self._in_flight = 0
        self._idle: asyncio.Event | None = None
        self._closing = False

    @property
    def open(self) -> bool:
        """Whether the session is open and not closing."""
        return self._session is not None and not self._closing

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return self._in_flight

    @property
    def paused_for(self) -> float:
        """Seconds left of a carrier-requested pause (0 when not paused)."""
        return max(0.0, self._paused_until - time.monotonic())

    async def start(self) -> None:
        """Open the session (idempotent)."""
        if self._session is not None:
            return
        settings = self.settings
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.max_in_flight),
            timeout=aiohttp.ClientTimeout(
                total=settings.timeout, sock_connect=settings.connect_timeout
            ),
            headers={"User-Agent": self._user_agent},
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=settings.trust_env,
            raise_for_status=False,
        )

    async def stop(self) -> None:
        """Refuse new requests, let those in flight finish for ``drain_timeout``, close."""
        session = self._session
        if session is None:
            return
        self._closing = True
        if self._idle is not None and self._in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.settings.drain_timeout)
        self._session = None
        await session.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Sequence[tuple[str, str]] | None = None,
        params: Sequence[tuple[str, str]] | None = None,
    ) -> HttpAnswer:
        """Send one request to the carrier and return its answer, whatever the status.

        Waits out short pauses, a free slot and a throughput token first. Raises only
        ``TemporaryFailure`` (``http_not_started``, ``http_timeout``, ``http_connection``)
        or ``Throttled`` (``http_429``, during a long pause).
        """
        await self._wait_pause()
        slots = self._slots
        if not self.open or slots is None:
            raise self._not_started()
        body: bytes | None = None
        all_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            all_headers.setdefault("Content-Type", "application/json; charset=utf-8")
        elif form is not None:
            body = urlencode(list(form)).encode("ascii")
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        all_headers.setdefault("Accept", "application/json")
        async with slots:
            await self._wait_pause()
            if self._bucket is not None:
                await self._bucket.take()
            session = self._session
            if session is None or self._closing:
                raise self._not_started()
            self._enter()
            try:
                async with session.request(
                    method,
                    url,
                    params=list(params) if params else None,
                    data=body,
                    headers=all_headers,
                    allow_redirects=False,
                ) as response:
                    data = await self._read(response)
                    return HttpAnswer(response.status, response.headers, data)
            except TimeoutError:
                raise TemporaryFailure(
                    f"{self.settings.id}: no answer from {_host(url)} within "
                    f"{self.settings.timeout:g}s (the carrier may have the message)",
                    code="http_timeout",
                ) from None
            except (_aiohttp().ClientError, OSError) as exc:
                raise TemporaryFailure(
                    f"{self.settings.id}: request to {_host(url)} failed: {_describe(exc)}",
                    code="http_connection",
                ) from None
            finally:
                self._leave()

    def error_for(
        self,
        answer: HttpAnswer,
        *,
        carrier_code: object = None,
        carrier_text: str | None = None,
    ) -> CarrierError:
        """The error for a non-success ``answer`` (see the module docstring); a 429, or a
        503 with ``Retry-After``, also pauses new submits."""
        status = answer.status
        code = _carrier_code(carrier_code)
        suffix = f":{code}" if code else ""
        detail = f"{self.settings.id}: carrier answered HTTP {status}"
        if code:
            detail += f" (error {code})"
        if carrier_text:
            detail += f": {short(carrier_text)}"
        if status == 429:
            pause = self._pause(answer)
            return Throttled(f"{detail}; submits paused for {pause:g}s", code=f"http_429{suffix}")
        if status >= 500:
            if status == 503 and answer.headers.get("Retry-After"):
                pause = self._pause(answer)
                detail += f"; submits paused for {pause:g}s"
            return TemporaryFailure(detail, code=f"http_5xx{suffix}")
        if status in (401, 403):
            detail += " (the carrier refused our credentials)"
            if self.settings.auth_failure_permanent:
                return PermanentFailure(detail, code=f"http_auth{suffix}")
            return TemporaryFailure(detail, code=f"http_auth{suffix}")
        if status == 408:
            return TemporaryFailure(detail, code=f"http_timeout{suffix}")
        if 400 <= status < 500:
            fault = Fault.MESSAGE if code in self.settings.message_fault_codes else Fault.ROUTE
            return PermanentFailure(detail, code=f"http_4xx{suffix}", fault=fault)
        return TemporaryFailure(detail, code="http_unexpected_status")

    def bad_response(self, what: str) -> TemporaryFailure:
        """The error for a success answer we cannot read (the carrier may have the message)."""
        return TemporaryFailure(
            f"{self.settings.id}: unreadable success answer from the carrier ({what}); "
            "it may have taken the message",
            code="http_bad_response",
        )

    # --- internals --------------------------------------------------------------------------

    def _not_started(self) -> TemporaryFailure:
        return TemporaryFailure(
            f"{self.settings.id}: connector not running", code="http_not_started"
        )

    def _enter(self) -> None:
        self._in_flight += 1
        if self._idle is not None:
            self._idle.clear()

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0 and self._idle is not None:
            self._idle.set()

    def _pause(self, answer: HttpAnswer) -> float:
        settings = self.settings
        seconds = retry_after_seconds(answer.headers.get("Retry-After"))
        if seconds is None:
            seconds = settings.throttle_pause_default
        seconds = min(seconds, settings.throttle_pause_max)
        until = time.monotonic() + seconds
        if until > self._paused_until:
            self._paused_until = until
        log.warning("%s: carrier asked to slow down; pausing submits for %gs", settings.id, seconds)
        return seconds

    async def _wait_pause(self) -> None:
        remaining = self._paused_until - time.monotonic()
        if remaining <= 0:
            return
        if remaining > self.settings.throttle_wait_max:
            raise Throttled(
                f"{self.settings.id}: submits paused for {remaining:.1f}s more, as the carrier "
                "asked (Retry-After)",
                code="http_429",
            )
        await asyncio.sleep(remaining)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.settings.max_response_bytes
        data = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            data += chunk
            if len(data) >= limit:
                del data[limit:]
                break
        return bytes(data)


def basic_auth(username: str, password: str) -> str:
    """An ``Authorization`` value for HTTP Basic auth (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _host(url: str) -> str:
    """Only the host (and port) of ``url``: paths and queries may hold credentials."""
    try:
        parts = urlsplit(url)
        if not parts.hostname:
            return "?"
        return parts.hostname + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "?"


def _aiohttp() -> Any:
    """The aiohttp module, loaded by the session that raised (see the import above)."""
    import aiohttp

    return aiohttp


def _describe(exc: BaseException) -> str:
    """A short account of a transport error that never includes the URL."""
    aiohttp = _aiohttp()
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect ({type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the carrier closed the connection without answering (it may have the message)"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    return type(exc).__name__


# --- callbacks ------------------------------------------------------------------------------


class BadCallback(ValueError):
    """A callback whose body or fields we cannot read (answered with 400)."""


@dataclass(frozen=True)
class CarrierCallback:
    """A carrier's HTTP request to one of our callback URLs, as the REST layer received it.

    ``url`` is the full URL as the carrier called it (scheme, host, port, path and query:
    Twilio signs exactly that). ``headers`` are looked up case-insensitively (names are
    stored lower-case). The form, query and JSON views are parsed on first use.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(
            self, "headers", MappingProxyType({k.lower(): v for k, v in self.headers.items()})
        )

    def header(self, name: str) -> str | None:
        """A header's value by case-insensitive name."""
        return self.headers.get(name.lower())

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-case, without parameters."""
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    @cached_property
    def query(self) -> Mapping[str, tuple[str, ...]]:
        """The URL's query parameters."""
        return _parse_pairs(urlsplit(self.url).query)

    @cached_property
    def form(self) -> Mapping[str, tuple[str, ...]]:
        """The body as ``application/x-www-form-urlencoded`` fields (``BadCallback`` if not)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadCallback("the form body is not UTF-8") from None
        return _parse_pairs(text)

    @cached_property
    def json(self) -> Any:
        """The body as JSON (``BadCallback`` if it is not)."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise BadCallback("the body is not JSON") from None

    def field(self, name: str) -> str | None:
        """A form field's first value, else the query parameter's; ``None`` if absent."""
        values = self.form.get(name) or self.query.get(name)
        return values[0] if values else None


def _parse_pairs(text: str) -> Mapping[str, tuple[str, ...]]:
    try:
        parsed = parse_qs(text, keep_blank_values=True, errors="strict", max_num_fields=1000)
    except (UnicodeDecodeError, ValueError):
        raise BadCallback("the form fields cannot be read") from None
    return MappingProxyType({key: tuple(values) for key, values in parsed.items()})


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """The answer the REST layer gives the carrier: status, body and its content type.

    ``accepted`` counts the receipts or inbound messages handed to the sinks.
    """

    status: int
    body: bytes = b""
    content_type: str | None = None
    accepted: int = 0

    @classmethod
    def text(cls, status: int, text: str, accepted: int = 0) -> CallbackResult:
        """A plain-text answer."""
        return cls(status, text.encode(), "text/plain; charset=utf-8" if text else None, accepted)

    @classmethod
    def bad_request(cls, detail: str) -> CallbackResult:
        """400: the callback could not be read; the carrier should not send it again as is."""
        return cls.text(400, detail)

    @classmethod
    def forbidden(cls) -> CallbackResult:
        """403: the signature or shared secret did not match."""
        return cls.text(403, "invalid signature")

    @classmethod
    def unavailable(cls, accepted: int = 0) -> CallbackResult:
        """503: we could not store what the callback said; the carrier should send it again."""
        return cls.text(503, "try again later", accepted)


def secret_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of a shared secret (``False`` when none was presented)."""
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def url_variants(url: str) -> list[str]:
    """``url`` as given, and with its default port removed or added (carriers disagree)."""
    variants = [url]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return variants
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.netloc.rsplit("@", 1)[-1]
    if default is None or not parts.hostname:
        return variants
    if port is None:
        other = parts._replace(netloc=f"{host}:{default}")
    elif port == default:
        other = parts._replace(netloc=host.rsplit(":", 1)[0])
    else:
        return variants
    variants.append(urlunsplit(other))
    return variants


# --- the connector skeleton ------------------------------------------------------------------


class HttpCarrierConnector(abc.ABC, Generic[SettingsT]):
    """``ports.Connector`` over :class:`HttpCarrierClient`; one subclass per API shape.

    Subclasses implement :meth:`_send` (one request, returning the carrier's id) and the two
    callback handlers. ``receipt_sink`` gets every delivery receipt, ``mo_sink`` (optional)
    every inbound message; without an ``mo_sink`` inbound messages are acknowledged and logged.
    """

    shape: ClassVar[str] = "http"

    def __init__(
        self,
        settings: SettingsT,
        receipt_sink: ReceiptSink,
        clock: Clock,
        mo_sink: MoSink | None = None,
    ) -> None:
        self.settings = settings
        self._receipt_sink = receipt_sink
        self._mo_sink = mo_sink
        self._clock = clock
        self.client = HttpCarrierClient(settings)
        self._started = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.settings.id!r} shape={self.shape!r}>"

    # --- ports.Connector --------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The connector id."""
        return self.settings.id

    @property
    def pacing(self) -> TokenBucket | None:
        """The pacer of this connector's requests (``None`` without ``throughput_per_second``)."""
        return self.client.pacing

    @property
    def ready(self) -> bool:
        """True between ``start`` and ``stop`` (HTTP needs no standing connection)."""
        return self._started and self.client.open

    async def start(self) -> None:
        """Open the HTTP session."""
        await self.client.start()
        self._started = True

    async def stop(self) -> None:
        """Stop taking submits, let those in flight finish briefly, close the session."""
        self._started = False
        await self.client.stop()

    async def submit(self, message: Message) -> SubmitResult:
        """Send ``message`` whole in one request; the carrier's single id for it.

        Raises ``TemporaryFailure``, ``Throttled`` or ``PermanentFailure`` only.
        """
        if not self._started:
            raise TemporaryFailure(f"{self.id}: connector not running", code="http_not_started")
        carrier_id = await self._send(message)
        return SubmitResult(carrier_message_ids=(carrier_id,))

    @abc.abstractmethod
    async def _send(self, message: Message) -> str:
        """Submit ``message`` and return the carrier's id for it, or raise a CarrierError."""

    # --- callbacks --------------------------------------------------------------------------

    @abc.abstractmethod
    async def handle_receipt_callback(self, request: CarrierCallback) -> CallbackResult:
        """Answer a delivery-report request (``/v1/carriers/{id}/receipts``)."""

    @abc.abstractmethod
    async def handle_inbound_callback(self, request: CarrierCallback) -> CallbackResult:
        """Answer an inbound-message request (``/v1/carriers/{id}/inbound``)."""

    async def _deliver_receipts(
        self, receipts: Sequence[DeliveryReceipt], ok: CallbackResult
    ) -> CallbackResult:
        """Hand ``receipts`` to the sink in order, then ``ok``; 503 if the sink fails."""
        for count, receipt in enumerate(receipts):
            try:
                await self._receipt_sink(receipt)
            except Exception:
                log.exception(
                    "%s: could not store the receipt for %s; asking the carrier to resend",
                    self.id,
                    receipt.carrier_message_id,
                )
                return CallbackResult.unavailable(accepted=count)
        return dataclasses.replace(ok, accepted=len(receipts))

    async def _deliver_inbound(
        self, messages: Sequence[InboundMessage], ok: CallbackResult
    ) -> CallbackResult:
        """Hand inbound ``messages`` to the MO sink in order, then ``ok``; 503 if it fails."""
        sink = self._mo_sink
        for count, inbound in enumerate(messages):
            if sink is None:
                log.info(
                    "%s: MO from %s to %s acknowledged (no MO sink)",
                    self.id,
                    inbound.source,
                    inbound.destination,
                )
                continue
            try:
                await sink(inbound)
            except Exception:
                log.exception("%s: could not store an inbound message; asking to resend", self.id)
                return CallbackResult.unavailable(accepted=count)
        return dataclasses.replace(ok, accepted=len(messages))

    def _refuse(self, kind: str, reason: str, answer: CallbackResult) -> CallbackResult:
        """Log why a callback is refused and return ``answer``."""
        log.warning("%s: %s callback refused: %s", self.id, kind, reason)
        return answer
