"""A lean HTTP/1.1 client on asyncio that POSTs a body and answers with the status.

Webhook deliveries need very little of HTTP: one ``POST`` of a small body, the status of the
answer, and keep-alive connections so that a busy receiver is not reconnected for every event.
A general-purpose client (aiohttp) spends most of its CPU on what we do not need (streams,
cookie jars, redirects, tracing, header multidicts), so this module does just the needed part:

- ``_Connection`` is an ``asyncio.Protocol``: the event loop calls ``data_received`` with the
  raw bytes, which go straight into ``httptools.HttpResponseParser`` (llhttp, in C). Its
  callbacks only note the status, count body bytes and mark the end of the message; one future
  per request is resolved when the answer is complete, too long, or the connection is lost.
  There are no stream readers, buffers or per-chunk tasks.
- ``HttpClient`` owns the pool: open connections are counted per ``(scheme, host, port)`` and in
  total, idle and busy alike, so at most ``limit_per_host`` sockets go to one receiver and
  ``limit`` altogether. An idle connection of the right host is reused first (the most recently
  used one); a new one is opened while the limits allow, evicting the longest idle connection of
  another host when only the total limit is in the way; otherwise the request waits in one FIFO
  queue, and each released or closed connection serves the earliest waiter it can.
- A caller holding many requests for one receiver (a batch of webhook deliveries) can wait
  for that receiver's connections without a coroutine per request: ``connection_wait`` gives
  a future that the next connection of the host to come back (or to close) ends, after the
  queued waiters were served; the caller then starts what it can with ``start_post``.
- A connection goes back to the pool only after its response was read in full and the server
  kept it alive; anything else (``Connection: close``, a body past ``max_body``, a parse error,
  a timeout, a cancellation) closes it. Idle connections are closed after ``KEEPALIVE_SECONDS``
  by one lazily armed timer, and at once if the server closes them or talks out of turn.
- Receivers close idle keep-alive connections whenever they like, so a request on a reused
  connection that is lost before a single response byte arrived is sent once more, on a newly
  opened connection.
- ``timeout`` bounds the whole exchange (waiting for a connection, connecting, writing,
  reading). When it runs out after the final status arrived, that status is the answer. A
  request that finds an idle connection is watched by one timer shared by all such
  requests, armed for the earliest deadline, rather than by a timer (``asyncio.timeout``)
  of its own.

Parsed URLs are cached (the same receiver URLs come back all the time), and the request is
encoded into one ``bytes`` object and written with a single ``transport.write``.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import functools
import ipaddress
import math
import re
import socket
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import quote, unquote, urlsplit

import httptools

__all__ = [
    "KEEPALIVE_SECONDS",
    "BadResponse",
    "ClientClosed",
    "ConnectFailure",
    "Disconnected",
    "DnsFailure",
    "HttpClient",
    "HttpClientError",
    "InvalidUrl",
    "NotHttpUrl",
    "Target",
    "TlsFailure",
    "parse_target",
]

KEEPALIVE_SECONDS: Final = 15.0
"""How long an idle pooled connection is kept before it is closed (aiohttp's default too)."""

_TARGET_CACHE_SIZE: Final = 1024
#: How early a timer may fire: the event loop's timers count whole milliseconds.
_TIMER_RESOLUTION: Final = 0.001
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_HOSTNAME = re.compile(r"[A-Za-z0-9_.-]+")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PATH_SAFE: Final = "/%:@!$&'()*+,;=[]"
# What a caller's header means to the request head: a default it replaces, or ours to write.
_HOST, _USER_AGENT, _CONTENT_TYPE, _AUTHORIZATION = 1, 2, 4, 8
_OVERRIDES: Final = _HOST | _USER_AGENT | _AUTHORIZATION
_HEADER_ROLES: Final = {
    "host": _HOST,
    "user-agent": _USER_AGENT,
    "content-type": _CONTENT_TYPE,
    "authorization": _AUTHORIZATION,
    "content-length": -1,
    "transfer-encoding": -1,
}
_QUERY_SAFE: Final = _PATH_SAFE + "?"
#: A request head's template, which of the caller's headers it leaves out, and its target.
_Layout = tuple[str, tuple[bool, ...], "Target"]


class HttpClientError(Exception):
    """A request got no HTTP answer."""


class InvalidUrl(HttpClientError):
    """The URL cannot be requested: no host, a bad port, a malformed host."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class NotHttpUrl(InvalidUrl):
    """The URL's scheme is neither ``http`` nor ``https``."""


class DnsFailure(HttpClientError):
    """The host name could not be resolved."""

    def __init__(self, host: str, error: OSError) -> None:
        super().__init__(f"{host}: {error}")
        self.host = host


class TlsFailure(HttpClientError):
    """The TLS handshake failed (certificate, protocol mismatch, ...)."""

    def __init__(self, host: str, port: int, error: Exception) -> None:
        super().__init__(f"{host}:{port}: {error}")
        self.host = host
        self.port = port


class ConnectFailure(HttpClientError):
    """The TCP connection could not be established."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        super().__init__(f"{host}:{port}: {error}")
        self.host = host
        self.port = port
        self.os_error = error


class Disconnected(HttpClientError):
    """The server closed the connection before the status line of its answer."""


class BadResponse(HttpClientError):
    """The server's answer is not valid HTTP/1.x."""


class ClientClosed(HttpClientError):
    """The client was closed while the request waited for a connection."""


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a cheap cache key
class Target:
    """What a URL means for a request: where to connect and how the request starts."""

    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    request_line: str
    host_header: str
    authorization: str | None


def parse_target(url: str) -> Target:
    """The ``Target`` of an ``http(s)`` URL, or ``NotHttpUrl``/``InvalidUrl``."""
    try:
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
        username = parts.username
        password = parts.password
    except ValueError as exc:  # bad port, unbalanced IPv6 brackets
        raise InvalidUrl(url) from exc
    scheme = parts.scheme
    if not scheme:
        raise InvalidUrl(url)
    if scheme not in _DEFAULT_PORTS:
        raise NotHttpUrl(url)
    if not hostname:
        raise InvalidUrl(url)
    default_port = _DEFAULT_PORTS[scheme]
    if port is None:
        port = default_port
    if ":" in hostname:  # only a bracketed IPv6 literal keeps a colon in ``hostname``
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError as exc:
            raise InvalidUrl(url) from exc
        authority = f"[{hostname}]"
    else:
        if not hostname.isascii():
            try:
                hostname = hostname.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise InvalidUrl(url) from exc
        if not _HOSTNAME.fullmatch(hostname):
            raise InvalidUrl(url)
        authority = hostname
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path = f"{path}?{quote(parts.query, safe=_QUERY_SAFE)}"
    authorization = None
    if username is not None:
        credentials = f"{unquote(username)}:{unquote(password or '')}"
        try:
            token = base64.b64encode(credentials.encode("latin-1")).decode("ascii")
        except UnicodeEncodeError as exc:
            raise InvalidUrl(url) from exc
        authorization = f"Basic {token}"
    return Target(
        key=(scheme, hostname, port),
        host=hostname,
        port=port,
        tls=scheme == "https",
        request_line=f"POST {path} HTTP/1.1\r\n",
        host_header=authority if port == default_port else f"{authority}:{port}",
        authorization=authorization,
    )


class _Grant(enum.Enum):
    """A waiter's grant when no idle connection is handed over: open a new one."""

    NEW_CONNECTION = enum.auto()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses answers as their bytes arrive."""

    __slots__ = (
        "_body_bytes",
        "_complete",
        "_extra",
        "_informational",
        "_keep_alive",
        "_loop",
        "_lost_waiter",
        "_max_body",
        "_on_idle_lost",
        "_parser",
        "_waiter",
        "host",
        "idle_since",
        "lost",
        "received",
        "reusable",
        "reused",
        "status",
        "transport",
    )

    def __init__(
        self,
        host: _Host,
        max_body: int,
        on_idle_lost: Callable[[_Connection], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.host = host
        #: The client's loop, which serves the connection: kept to save asking
        #: ``asyncio.get_running_loop()`` (a ``getpid`` system call on Python 3.11) per request.
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.status = 0
        self.received = False
        self.reusable = False
        self.reused = False
        self.lost = False
        self.idle_since = 0.0
        self._max_body = max_body
        self._on_idle_lost = on_idle_lost
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._lost_waiter: asyncio.Future[None] | None = None
        self._informational = False
        self._complete = False
        self._keep_alive = False
        self._extra = False
        self._body_bytes = 0

    # --- the request side ------------------------------------------------------------------

    async def exchange(self, request: bytes, body: bytes) -> int:
        """Write one request and wait for its answer; the final status."""
        await self.start_exchange(request, body)
        return self.status

    def start_exchange(self, request: bytes, body: bytes) -> asyncio.Future[None]:
        """``exchange`` up to the wait: the request is written and the future returned that
        ends (``status`` then set) or fails as ``exchange`` would; ``Disconnected`` here when
        the connection is gone already."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiter = waiter
        self.status = 0
        self.received = False
        self.reusable = False
        self._complete = False
        self._informational = False
        self._extra = False
        self._body_bytes = 0
        transport = self.transport
        if transport is None or self.lost or transport.is_closing():
            self._waiter = None
            raise Disconnected("server disconnected without answering")
        if len(body) <= 16384:
            transport.write(request + body)
        else:
            transport.write(request)
            transport.write(body)
        return waiter

    def expire(self) -> None:
        """The request's time ran out: its ``exchange`` raises ``TimeoutError`` (the
        connection, its answer unread, is then closed by the pool)."""
        self._settle(TimeoutError())

    def close(self, *, abort: bool) -> None:
        """Close the connection: gracefully, or at once (``abort``) when it is in a bad state.

        A pending request is settled by ``connection_lost``.
        """
        if self.transport is not None and not self.lost:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    async def wait_lost(self) -> None:
        """Return once the event loop has let go of the connection."""
        if self.lost or self.transport is None:
            return
        if self._lost_waiter is None:
            self._lost_waiter = asyncio.get_running_loop().create_future()
        await self._lost_waiter

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = cast("asyncio.Transport", transport)  # create_connection: a stream

    def data_received(self, data: bytes) -> None:
        """Feed the parser; resolve the request once its answer is settled."""
        if self._waiter is None:
            # Nothing was asked: a server talking out of turn cannot be trusted with the next
            # request, so the connection goes (and the pool forgets it in connection_lost).
            self.close(abort=True)
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # a 101 we never asked for: the connection is done
            self._settle(None if self.status else BadResponse("unexpected protocol upgrade"))
            return
        except httptools.HttpParserError as exc:
            self._settle(None if self.status else BadResponse(str(exc) or type(exc).__name__))
            return
        if self._body_bytes > self._max_body:
            self._settle(None)  # the status stands; the connection goes with the rest of the body
        elif self._complete:
            self.reusable = self._keep_alive and not self._extra
            self._settle(None)

    def eof_received(self) -> bool | None:
        """Let the transport close; ``connection_lost`` settles what is pending."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Settle the pending request, or tell the pool that an idle connection is gone."""
        self.lost = True
        if self._lost_waiter is not None and not self._lost_waiter.done():
            self._lost_waiter.set_result(None)
        if self._waiter is None:
            self._on_idle_lost(self)
        elif self.status:
            # The status is known; a close-delimited or cut-short body does not change it.
            self._settle(None)
        elif exc is None or isinstance(exc, HttpClientError):
            self._settle(Disconnected("server disconnected without answering"))
        else:
            self._settle(exc)

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A second message after the answer is a protocol violation."""
        if self._complete:
            self._extra = True

    def on_headers_complete(self) -> None:
        """Note the final status; 1xx interim answers (``100 Continue``) are skipped."""
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._informational = True
        else:
            self.status = status

    def on_body(self, body: bytes) -> None:
        """Count (and drop) body bytes."""
        self._body_bytes += len(body)

    def on_message_complete(self) -> None:
        """The final answer is complete (an interim one only resets the parser's state)."""
        if self._informational:
            self._informational = False
        else:
            self._complete = True
            # Asked now: once the callback returns, the parser is reset for the next message.
            self._keep_alive = self._parser.should_keep_alive()

    # ---------------------------------------------------------------------------------------

    def _settle(self, error: Exception | None) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    @property
    def request_sent(self) -> bool:
        """Our whole request left the write buffer (a server may answer before reading it)."""
        return self.transport is not None and not self.transport.get_write_buffer_size()

    @property
    def settled_cleanly(self) -> bool:
        """The last answer was read in full (so a graceful close is enough)."""
        return self._complete


#: Turns a request's error into the one its caller gets (``start_post``).
Translate = Callable[[BaseException], BaseException]


def _settle_with(
    result: asyncio.Future[int], translate: Translate | None, source: asyncio.Future[int]
) -> None:
    """``result`` as ``source`` ended (its error through ``translate``)."""
    if result.done():
        if not source.cancelled():
            source.exception()  # retrieved: nobody waits for it any more
    elif source.cancelled():
        result.cancel()
    elif (error := source.exception()) is not None:
        result.set_exception(error if translate is None else translate(error))
    else:
        result.set_result(source.result())


class _Host:
    """The pool's book of one ``(scheme, host, port)``."""

    __slots__ = ("idle", "key", "open", "waiting", "watchers")

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.idle: dict[_Connection, None] = {}  # oldest first
        self.open = 0  # idle, busy and connecting
        self.waiting = 0
        #: ``connection_wait``'s futures, earliest first: each ended by a connection that
        #: comes back or closes.
        self.watchers: deque[asyncio.Future[None]] = deque()


@dataclass(slots=True, eq=False)
class _Waiter:
    host: _Host
    target: Target
    fresh: bool
    future: asyncio.Future[_Connection | _Grant]


class HttpClient:
    """A pool of keep-alive HTTP/1.1 connections for POSTing bodies; bound to one event loop.

    ``limit`` caps the connections open at once, ``limit_per_host`` those to one
    ``(scheme, host, port)``; zero or less means no cap. At most ``max_body`` bytes of an
    answer's body are read; a longer answer costs its connection.
    """

    def __init__(
        self,
        *,
        limit: int,
        limit_per_host: int,
        user_agent: str,
        max_body: int,
        ssl_context: Callable[[], ssl.SSLContext] = ssl.create_default_context,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._limit = limit if limit > 0 else 1 << 62
        self._limit_per_host = limit_per_host if limit_per_host > 0 else 1 << 62
        self._user_agent = user_agent
        self._max_body = max_body
        self._make_ssl_context = ssl_context
        self._ssl_context: ssl.SSLContext | None = None
        self._targets: dict[str, Target] = {}
        self._starts: dict[Target, str] = {}  # head starts with every default header
        self._header_roles: dict[str, int] = {}
        #: Head templates by target (its identity: targets are kept while this is) and names.
        self._layouts: dict[tuple[int, tuple[str, ...]], _Layout] = {}
        self._hosts: dict[tuple[str, str, int], _Host] = {}
        self._idle: dict[_Connection, None] = {}  # every host's, oldest first
        self._connections: set[_Connection] = set()
        self._open = 0
        self._waiters: deque[_Waiter] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        #: Requests sent on a reused connection without a timeout of their own (``post``):
        #: their deadline by connection, watched by one timer for them all.
        self._deadlines: dict[_Connection, float] = {}
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline_at = math.inf
        self.closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the client belongs to."""
        return self._loop

    @property
    def open_connections(self) -> int:
        """How many connections are open or being opened."""
        return self._open

    def target(self, url: str) -> Target:
        """The parsed ``url`` (cached)."""
        target = self._targets.get(url)
        if target is None:
            target = parse_target(url)
            if len(self._targets) >= _TARGET_CACHE_SIZE:
                self._targets.clear()
                self._starts.clear()
                self._layouts.clear()
            self._targets[url] = target
        return target

    def encode_head(self, target: Target, headers: Mapping[str, str], length: int) -> bytes:
        """The request line and headers of a POST of ``length`` bytes to ``target``.

        ``Host``, ``User-Agent`` (ours), ``Content-Type`` (``application/octet-stream``) and the
        URL's credentials are sent unless the caller gives them; ``Content-Length`` is always
        ours. Raises ``ValueError`` for a header that would break the request apart.

        The head's layout (which names are sent, which defaults they replace) is worked out
        once per target and list of names, as a template the values are put into: a webhook's
        four headers are the same names on every delivery.
        """
        names = tuple(headers)
        layout = self._layouts.get((id(target), names))
        if layout is None or layout[2] is not target:
            layout = self._layout(target, names)
        template, dropped, _ = layout
        values = tuple(headers.values())
        if dropped:
            values = tuple(value for value, drop in zip(values, dropped, strict=True) if not drop)
        text = "".join(values)
        if "\n" in text or "\r" in text or "\0" in text:
            raise ValueError("a newline, carriage return or NUL in an HTTP header value")
        return (template % (length, *values)).encode("utf-8", "surrogateescape")

    def _layout(self, target: Target, names: tuple[str, ...]) -> _Layout:
        """The head's template for ``names`` (``%``-placeholders: the length, then each sent
        header's value), which of the names are not sent (ours to state), and the target (held:
        its identity keys the layout)."""
        roles = self._header_roles
        given = 0
        lines = []
        dropped = []
        for name in names:
            role = roles.get(name)
            if role is None:
                role = self._learn_header(name)
            dropped.append(role < 0)
            if role >= 0:
                given |= role
                lines.append(name.replace("%", "%%") + ": %s\r\n")
        start: str | None = None if given & _OVERRIDES else self._starts.get(target)
        if start is None:
            start = self._head_start(target, given)
            if not given & _OVERRIDES:
                self._starts[target] = start
        ctype = "" if given & _CONTENT_TYPE else "Content-Type: application/octet-stream\r\n"
        template = start.replace("%", "%%") + ctype + "Content-Length: %d\r\n" + "".join(lines)
        layout = (template + "\r\n", tuple(dropped) if any(dropped) else (), target)
        if len(self._layouts) >= _TARGET_CACHE_SIZE:
            self._layouts.clear()
        self._layouts[(id(target), names)] = layout
        return layout

    def _head_start(self, target: Target, given: int) -> str:
        """The request line and the default headers the caller did not give."""
        start = target.request_line
        if not given & _HOST:
            start += f"Host: {target.host_header}\r\n"
        if not given & _USER_AGENT:
            start += f"User-Agent: {self._user_agent}\r\n"
        if not given & _AUTHORIZATION and target.authorization is not None:
            start += f"Authorization: {target.authorization}\r\n"
        return start

    def _learn_header(self, name: str) -> int:
        """Check a header name once and remember what it means to us."""
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid HTTP header name {name!r}")
        role = _HEADER_ROLES.get(name.lower(), 0)
        if len(self._header_roles) < _TARGET_CACHE_SIZE:
            self._header_roles[name] = role
        return role

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> int:
        """POST ``body`` to ``url``; the final status of the answer.

        Raises an ``HttpClientError`` when there is no answer, ``TimeoutError`` when ``timeout``
        runs out before the status arrived, and ``ValueError`` for a header that would break
        the request apart.

        A request that finds an idle connection to its host (the usual case under load) is
        written at once and its deadline joins the ones ``_expire`` watches with a single
        timer; any other waits for its connection under an ``asyncio.timeout`` of its own.
        """
        target = self.target(url)
        request = self.encode_head(target, headers, len(body))
        fresh = False
        conn = self._reuse_idle(target) if timeout > 0 else None
        if conn is not None:
            deadline = self._loop.time() + timeout
            self._watch(conn, deadline)
            try:
                status = await conn.exchange(request, body)
            except TimeoutError:  # ``_expire``: the deadline passed (before OSError: a subclass)
                status = conn.status
                self._release(conn)
                if not status:
                    raise
                return status
            except (OSError, Disconnected):
                self._deadlines.pop(conn, None)
                self._release(conn)
                if conn.received:
                    raise
                # The server had closed the idle connection before our request reached it:
                # again on a new one, in the time left.
                timeout = deadline - self._loop.time()
                if timeout <= 0:
                    raise TimeoutError from None
                fresh = True
            except BaseException:
                self._deadlines.pop(conn, None)
                self._release(conn)
                raise
            else:
                self._deadlines.pop(conn, None)
                self._release(conn)
                return status
        return await self._post_waiting(target, request, body, timeout, fresh=fresh)

    async def _post_waiting(
        self, target: Target, request: bytes, body: bytes, timeout: float, *, fresh: bool
    ) -> int:
        """``post`` on a connection waited for (``fresh``: a new one) under a timeout."""
        conn: _Connection | None = None
        try:
            # Like aiohttp, a timeout of zero or less means none.
            async with asyncio.timeout(timeout if timeout > 0 else None):
                conn = await self._acquire(target, fresh=fresh)
                try:
                    status = await conn.exchange(request, body)
                except (OSError, Disconnected):
                    if not conn.reused or conn.received:
                        raise
                    # The server had closed the idle connection before our request reached it.
                    self._release(conn)
                    conn = None
                    conn = await self._acquire(target, fresh=True)
                    status = await conn.exchange(request, body)
                self._release(conn)
                conn = None
                return status
        except TimeoutError:
            if conn is None:
                raise
            status = conn.status
            self._release(conn)
            if not status:
                raise
            return status
        except BaseException:
            if conn is not None:
                self._release(conn)
            raise

    def start_post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,
        translate: Translate | None = None,
    ) -> asyncio.Future[int] | None:
        """``post`` written now on an idle connection to ``url``'s host, without a coroutine:
        the future of its status, which ends as ``post`` would return or raise (the error
        passed through ``translate``, when given). ``None`` when no idle connection is free
        (or the URL or a header is invalid): then ``post`` it."""
        if timeout <= 0:
            return None
        try:
            target = self.target(url)
        except HttpClientError:
            return None  # ``post`` raises it
        conn = self._reuse_idle(target)
        if conn is None:
            return None
        try:
            request = self.encode_head(target, headers, len(body))
        except ValueError:
            self._give_back(conn.host, conn)
            return None  # ``post`` raises it
        deadline = self._loop.time() + timeout
        try:
            answered = conn.start_exchange(request, body)
        except Disconnected:  # gone since it went idle: ``post`` opens another
            self._release(conn)
            return None
        self._watch(conn, deadline)
        result: asyncio.Future[int] = self._loop.create_future()
        answered.add_done_callback(
            functools.partial(
                self._answered, conn, target, request, body, deadline, result, translate
            )
        )
        return result

    def _answered(
        self,
        conn: _Connection,
        target: Target,
        request: bytes,
        body: bytes,
        deadline: float,
        result: asyncio.Future[int],
        translate: Translate | None,
        answered: asyncio.Future[None],
    ) -> None:
        """The end of a request ``start_post`` wrote: ``result`` as ``post`` would end."""
        self._deadlines.pop(conn, None)
        status = conn.status
        self._release(conn)
        error = None if answered.cancelled() else answered.exception()
        if answered.cancelled():
            error = Disconnected("server disconnected without answering")
        if result.done():
            return
        if error is None or (status and isinstance(error, TimeoutError)):
            # A timeout (``_expire``) once the status came still gives the status.
            result.set_result(status)
            return
        if (
            isinstance(error, OSError | Disconnected)
            and not isinstance(error, TimeoutError)
            and not conn.received
        ):
            # The server had closed the idle connection before our request reached it: again
            # on a new one, in the time left.
            left = deadline - self._loop.time()
            if left > 0:
                again = asyncio.ensure_future(
                    self._post_waiting(target, request, body, left, fresh=True)
                )
                again.add_done_callback(functools.partial(_settle_with, result, translate))
                return
            error = TimeoutError()
        result.set_exception(error if translate is None else translate(error))

    def _reuse_idle(self, target: Target) -> _Connection | None:
        """An idle connection to ``target``'s host taken for a request now, if one is there
        and no request waits for that host."""
        host = self._hosts.get(target.key)
        if host is None or host.waiting or self.closed:
            return None
        return self._take_idle(host)

    def connection_wait(self, url: str) -> asyncio.Future[None] | None:
        """After ``start_post`` gave ``None`` because every connection to ``url``'s host is
        busy at ``limit_per_host``: a future that the next of them to come back to the pool
        (or to close) ends, once the requests queued in ``post`` were served; ``start_post``
        may then take it, and if another took it first, ask again. ``None`` when that is not
        what stopped the start (a connection could be opened, one is idle, requests of
        ``post`` queue for the host, an invalid URL, the client closed): then ``post``.
        Cancel the future to stop waiting."""
        if self.closed:
            return None
        try:
            key = self.target(url).key
        except HttpClientError:
            return None
        host = self._hosts.get(key)
        if host is None or host.waiting or host.idle or host.open < self._limit_per_host:
            return None
        watcher: asyncio.Future[None] = self._loop.create_future()
        host.watchers.append(watcher)
        return watcher

    def _tell_watcher(self, host: _Host) -> None:
        """End the earliest live ``connection_wait`` of ``host``: a connection came back,
        and the waiters of ``post`` (served first) left it. When the host is below its cap
        (a connection closed), end them all: each may now open one through ``post``."""
        watchers = host.watchers
        everyone = host.open < self._limit_per_host
        while watchers:
            watcher = watchers.popleft()
            if not watcher.done():
                watcher.set_result(None)
                if not everyone:
                    return

    def _watch(self, conn: _Connection, deadline: float) -> None:
        """Expire the request on ``conn`` at ``deadline`` (``_expire``)."""
        self._deadlines[conn] = deadline
        if deadline < self._deadline_at:
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
            self._deadline_at = deadline
            self._deadline_timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        """Expire the watched requests whose deadline has come (within the timers' resolution
        of a millisecond, as ``asyncio.timeout``'s); re-arm for the earliest of the others.
        Requests end long before their deadline as a rule, so this runs about once per
        timeout while requests keep going out, whatever their number."""
        self._deadline_timer = None
        self._deadline_at = math.inf
        now = self._loop.time() + _TIMER_RESOLUTION
        earliest = math.inf
        for conn, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[conn]
                conn.expire()
            elif deadline < earliest:
                earliest = deadline
        if earliest < math.inf:
            self._deadline_at = earliest
            self._deadline_timer = self._loop.call_at(earliest, self._expire)

    async def close(self) -> None:
        """Close every connection and fail every waiter; the client cannot be used again."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
            self._deadline_at = math.inf
        while self._waiters:
            waiter = self._waiters.popleft()
            waiter.host.waiting -= 1
            if not waiter.future.done():
                waiter.future.set_exception(ClientClosed("the HTTP client was closed"))
        for host in self._hosts.values():  # they ask again and are told to ``post``
            while host.watchers:
                self._tell_watcher(host)
        connections = list(self._connections)
        for conn in connections:
            self._forget(conn)
            conn.close(abort=False)
        if connections:
            lost = [asyncio.ensure_future(conn.wait_lost()) for conn in connections]
            _, pending = await asyncio.wait(lost, timeout=2.0)
            if pending:  # a TLS peer that does not finish the shutdown
                for conn in connections:
                    conn.close(abort=True)
                await asyncio.wait(pending)

    # --- the pool --------------------------------------------------------------------------

    async def _acquire(self, target: Target, *, fresh: bool) -> _Connection:
        host = self._hosts.get(target.key)
        if host is None:
            if self.closed:
                raise ClientClosed("the HTTP client was closed")
            if len(self._hosts) >= _TARGET_CACHE_SIZE:
                self._prune_hosts()
            host = self._hosts[target.key] = _Host(target.key)
        if not host.waiting and not self.closed:
            grant = self._take(host, fresh=fresh)
            if grant is not None:
                return (
                    grant if isinstance(grant, _Connection) else await self._connect(target, host)
                )
        if self.closed:
            raise ClientClosed("the HTTP client was closed")
        future: asyncio.Future[_Connection | _Grant] = self._loop.create_future()
        waiter = _Waiter(host, target, fresh, future)
        self._waiters.append(waiter)
        host.waiting += 1
        try:
            grant = await future
        except asyncio.CancelledError:
            if future.cancelled():
                if waiter in self._waiters:  # close() may have dropped it already
                    self._waiters.remove(waiter)
                    host.waiting -= 1
            else:  # granted just as we were cancelled: give it back
                self._give_back(host, future.result())
            raise
        return grant if isinstance(grant, _Connection) else await self._connect(target, host)

    def _take(self, host: _Host, *, fresh: bool) -> _Connection | _Grant | None:
        """An idle connection, a grant to open one, or ``None`` (wait)."""
        if not fresh:
            conn = self._take_idle(host)
            if conn is not None:
                return conn
        if host.open >= self._limit_per_host:
            if not host.idle:
                return None
            self._evict(next(iter(host.idle)))
        if self._open >= self._limit:
            if not self._idle:
                return None
            self._evict(next(iter(self._idle)))
        host.open += 1
        self._open += 1
        return _Grant.NEW_CONNECTION

    def _take_idle(self, host: _Host) -> _Connection | None:
        """The most recently used idle connection of ``host`` that is still open (the
        closed ones met on the way are forgotten), taken out of the idle ones."""
        while host.idle:
            conn = next(reversed(host.idle))
            self._unidle(conn)
            if not conn.lost and conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                return conn
            self._forget(conn)
        return None

    def _wake(self) -> None:
        """Serve the waiters, earliest first, with what is free now.

        A host that could not serve one waiter cannot serve a later one in the same pass
        (serving others only takes connections away), so its other waiters are passed over
        without asking: hundreds of deliveries may wait for one receiver's connections.
        """
        full: set[_Host] = set()
        for waiter in list(self._waiters):
            if waiter.host in full or waiter.future.done():
                continue
            grant = self._take(waiter.host, fresh=waiter.fresh)
            if grant is None:
                full.add(waiter.host)
                continue
            self._waiters.remove(waiter)
            waiter.host.waiting -= 1
            waiter.future.set_result(grant)

    def _give_back(self, host: _Host, grant: _Connection | _Grant) -> None:
        if isinstance(grant, _Connection):
            self._to_idle(grant)
        else:
            host.open -= 1
            self._open -= 1
        if self._waiters:
            self._wake()
        if host.watchers:
            self._tell_watcher(host)

    async def _connect(self, target: Target, host: _Host) -> _Connection:
        """Open a connection under a slot already counted for ``host``."""
        try:
            conn = await self._open_connection(target, host)
        except BaseException:
            host.open -= 1
            self._open -= 1
            if self._waiters:
                self._wake()
            if host.watchers:
                self._tell_watcher(host)
            raise
        if self.closed:
            host.open -= 1
            self._open -= 1
            conn.close(abort=True)
            raise ClientClosed("the HTTP client was closed")
        self._connections.add(conn)
        return conn

    async def _open_connection(self, target: Target, host: _Host) -> _Connection:
        loop = self._loop
        context: ssl.SSLContext | None = None
        if target.tls:
            if self._ssl_context is None:
                self._ssl_context = self._make_ssl_context()
            context = self._ssl_context
        try:
            ipaddress.ip_address(target.host)
        except ValueError:
            try:
                infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise DnsFailure(target.host, exc) from exc
            addresses: list[tuple[int, str, int]] = [
                (info[0], str(info[4][0]), int(info[4][1])) for info in infos
            ]
        else:
            addresses = [(0, target.host, target.port)]
        error: OSError | None = None
        for family, address, port in addresses:
            try:
                _, conn = await loop.create_connection(
                    lambda: _Connection(host, self._max_body, self._idle_lost, loop),
                    address,
                    port,
                    family=family,
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                )
            except ssl.SSLError as exc:  # includes certificate verification failures
                raise TlsFailure(target.host, target.port, exc) from exc
            except OSError as exc:
                error = exc
                continue
            return conn
        assert error is not None  # getaddrinfo never answers with no address
        raise ConnectFailure(target.host, target.port, error) from error

    def _release(self, conn: _Connection) -> None:
        """Take a connection back after a request: park it if it may serve another."""
        self._park(conn)
        if self._waiters:
            self._wake()
        if conn.host.watchers:
            self._tell_watcher(conn.host)

    def _park(self, conn: _Connection) -> None:
        if conn.reusable and not conn.lost and not self.closed and conn.request_sent:
            conn.reusable = False
            self._to_idle(conn)
            return
        self._forget(conn)
        conn.close(abort=not conn.settled_cleanly)

    def _to_idle(self, conn: _Connection) -> None:
        conn.idle_since = self._loop.time()
        conn.host.idle[conn] = None
        self._idle[conn] = None
        if self._sweeper is None:
            self._sweeper = self._loop.call_at(conn.idle_since + KEEPALIVE_SECONDS, self._sweep)

    def _unidle(self, conn: _Connection) -> None:
        del conn.host.idle[conn]
        del self._idle[conn]

    def _forget(self, conn: _Connection) -> None:
        """Stop counting ``conn`` (it is closed or about to be); idempotent."""
        if conn not in self._connections:
            return
        if conn in self._idle:
            self._unidle(conn)
        self._connections.discard(conn)
        conn.host.open -= 1
        self._open -= 1

    def _prune_hosts(self) -> None:
        """Forget the books of hosts without connections or waiters (receivers come and go).

        Called only where no request is between looking its host up and being counted in it.
        """
        for key, host in list(self._hosts.items()):
            if not host.open and not host.waiting:
                del self._hosts[key]

    def _evict(self, conn: _Connection) -> None:
        self._forget(conn)
        conn.close(abort=False)

    def _idle_lost(self, conn: _Connection) -> None:
        """An idle connection was closed by the server (or by us): stop counting it."""
        if conn in self._idle:
            self._forget(conn)
            if self._waiters:
                self._wake()
            if conn.host.watchers:
                self._tell_watcher(conn.host)

    def _sweep(self) -> None:
        """Close the connections idle for ``KEEPALIVE_SECONDS``; re-arm for the next one."""
        self._sweeper = None
        expired = self._loop.time() - KEEPALIVE_SECONDS
        while self._idle:
            conn = next(iter(self._idle))
            if conn.idle_since > expired:
                self._sweeper = self._loop.call_at(conn.idle_since + KEEPALIVE_SECONDS, self._sweep)
                break
            self._evict(conn)
        self._prune_hosts()
