"""uvicorn's httptools protocol, with the writes of one loop iteration sent as one, and
``POST /v1/messages`` answered without the ASGI cycle.

Why this exists: uvicorn writes a response's status line and headers, then its body, with a
separate ``transport.write`` each, and each is a ``send`` system call on the socket (uvloop
writes at once when it can). A profile of ``pigeon serve`` under scenario c
(docs/benchmarks.md, session 19) gave those two calls about a quarter of the CPU of answering
``POST /v1/messages``, and the client is woken for each segment too. Handing uvicorn a
transport that gathers what is written during one turn of the loop and writes it once at
the end of it makes every ordinary response one system call, without changing what uvicorn
sends.

Nothing else changes: the gathered bytes are written in order, before any ``close`` and
at once when they pass ``FLUSH_BYTES`` (a streamed body does not pile up unseen by flow
control); ``abort`` drops them as it drops the transport's own buffer.

The direct answer: a request that ``FastAccept.serves`` (``pigeon.api.fast_accept``) is
answered by ``FastAccept.answer`` from the request uvicorn parsed, and the response written
to the connection as one piece, where the ASGI path would call uvicorn's proxy-headers
middleware, the app, and uvicorn's ``receive`` and ``send`` with an event dict each. A profile
of ``pigeon serve`` under scenario c (docs/benchmarks.md, session 21) gave that plumbing
about a fifth of the CPU of answering the request. uvicorn's own state of the exchange (its
``RequestResponseCycle``: body, flow control, keep-alive, pipelining, disconnects) is kept and
updated as its ``send`` would. The ASGI path is kept when anything could make a difference:
an access log, ``Expect: 100-continue``, another application in front (uvicorn's trace
logging), the concurrency limit's 503.

A whole request of the usual shape (one read holding exactly one ``POST /v1/messages``
with plain headers and a ``Content-Length`` body) is taken before uvicorn's parser sees it
(``CoalescingHttpToolsProtocol._lean``, ADR 51); any other read goes to the parser untouched.

The direct requests whose headers arrive in one turn of the loop are answered together, in
one task, at the end of the turn: each whose body is whole is started (``FastAccept.start``:
its accept handed to the store's writer, so they share a batch), then each answer is awaited
and written. A request whose body is still coming, or whose caller or tenant is not cached,
is answered on its own as before (``FastAccept.answer``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import operator
import re
import weakref
from collections.abc import Awaitable, Coroutine
from functools import partial
from typing import Any, NamedTuple, cast

from litestar.types import Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from pigeon.api.app import PigeonApp
from pigeon.api.fast_accept import ClientGoneError, FastAccept, FastAnswer

__all__ = ["FLUSH_BYTES", "CoalescedWrites", "CoalescingHttpToolsProtocol"]

#: Gathered bytes past this are written at once rather than at the end of the loop's turn.
FLUSH_BYTES = 64 * 1024


class CoalescedWrites:
    """An ``asyncio.Transport`` in front of another that writes, once per turn of the loop,
    everything written to it during that turn (or sooner, past ``FLUSH_BYTES``)."""

    __slots__ = ("_loop", "_pending", "_pending_bytes", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._pending_bytes = 0

    @property
    def wrapped(self) -> asyncio.Transport:
        """The transport the bytes are written to."""
        return self._transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Gather ``data``; it is written when the loop's turn ends (or now, if large)."""
        # A caller may reuse its buffer once write returns, as with any transport.
        chunk = data if type(data) is bytes else bytes(data)
        if not chunk:
            return
        if self._pending is None:
            self._pending = [chunk]
            self._pending_bytes = len(chunk)
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(chunk)
            self._pending_bytes += len(chunk)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def write_whole(self, data: bytes) -> None:
        """Write ``data``, a whole answer made in one piece, at once when nothing is gathered
        (the turn's only write on this connection, as a lean answer is), else after what is.
        Either way in the order written; at once it spares a callback per answer."""
        if self._pending is None:
            if not self._transport.is_closing():
                self._transport.write(data)
        else:
            self.write(data)

    def writelines(self, list_of_data: Any) -> None:
        """Gather each of ``list_of_data`` in order."""
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Write what is gathered now (nothing when the transport is closing)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self._pending_bytes = 0
        if self._transport.is_closing():
            return
        self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        """Write what is gathered, then close (the transport sends it before closing)."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is gathered and abort the connection."""
        self._pending = None
        self._pending_bytes = 0
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._pending_bytes + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        # Everything else (extra info, reading, set_protocol, buffer limits) is the
        # transport's own.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol writing through ``CoalescedWrites``, answering
    ``POST /v1/messages`` directly when the app is a ``PigeonApp`` with its fast path: pass it
    to ``uvicorn.Config(http=...)``."""

    _direct: FastAccept | None = None
    #: The transport uvicorn's side writes to (``CoalescedWrites``), for answers made whole.
    _coalesced: CoalescedWrites | None = None
    #: Whether whole ``POST /v1/messages`` requests may skip uvicorn's parser (``_lean``).
    _lean_ok = False
    #: uvicorn's parser is inside a request (between its first byte and its end).
    _parsing = False
    #: A request taken without the parser is being answered; what arrives meanwhile waits.
    _lean_pending = False
    _lean_held: list[bytes] | None = None
    #: The server is shutting down: close once the pending answer is written.
    _lean_closing = False
    #: The last head taken without the parser, split around its length (``_lean``).
    _lean_last: _LeanHead | None = None
    #: Since when (the loop's time) the connection has waited for a request after a lean
    #: answer; ``None`` while a request is under way.
    _lean_idle_since: float | None = None
    #: The timer that closes the connection once it has been idle that long: armed at most
    #: once per keep-alive period and checked when it fires, instead of a timer made and
    #: cancelled for every request (``_lean_answered``).
    _lean_keep_alive: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]  # uvicorn narrows it to Transport too
        self, transport: asyncio.Transport
    ) -> None:
        coalesced = self._coalesced = CoalescedWrites(transport, asyncio.get_running_loop())
        super().connection_made(coalesced)  # type: ignore[arg-type]  # a Transport in all it uses
        logs_access = self.access_log and self.access_logger.isEnabledFor(logging.INFO)
        self._direct = None if logs_access else _fast_accept_of(self.app)
        self._lean_ok = (
            self._direct is not None and not self.root_path and self.limit_concurrency is None
        )

    def data_received(self, data: bytes) -> None:
        self._lean_idle_since = None
        if self._lean_pending:  # answered in order: after the pending answer is written
            if self._lean_held is None:
                self._lean_held = []
                self.flow.pause_reading()
            self._lean_held.append(data)
            return
        if (
            self._lean_ok
            and not self._parsing
            and data.startswith(_LEAN_START)
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
            and self._lean(data)
        ):
            return
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._parsing = True
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._parsing = False
        super().on_message_complete()

    def _lean(self, data: bytes) -> bool:
        """Take ``data`` if it is exactly one whole ``POST /v1/messages`` request of the plain
        kind (HTTP/1.1, a ``Content-Length`` body, header lines of the strict form, none that
        asks for an upgrade, an interim answer, another framing or a close), without
        uvicorn's parser, scope and cycle. Anything else is uvicorn's, untouched (``False``).

        Why: the parser's callbacks and the cycle cost ``serve`` about 600 Python bytecodes
        per request, and the direct answer's plumbing around them as many again
        (docs/benchmarks.md, session 51), for the one request that arrives thousands of
        times a second in this shape."""
        end = data.find(b"\r\n\r\n", _LEAN_START_LENGTH - 2)
        if end < 0 or end > _LEAN_HEAD_MAX:
            return False
        block = data[_LEAN_START_LENGTH : end + 2]
        last = self._lean_last
        if (
            last is not None
            and block.startswith(last.before)
            and block.endswith(last.after)
            and len(block) > len(last.before) + len(last.after)
        ):
            # The head this connection sent last time, but perhaps for the length's digits
            # (clients repeat theirs): checked then, so only the new digits are.
            length = block[len(last.before) : len(block) - len(last.after)]
            if not length.isdigit() or len(length) > _LEAN_LENGTH_DIGITS:
                return False
            authorization, idempotency_key = last.authorization, last.idempotency_key
        else:
            if _LEAN_HEADER_LINES.fullmatch(block) is None:
                return False
            # Only the lines that matter are looked at, found by their names in a lower-cased
            # copy (each line then starts after an LF, the first one too): the three fields
            # the fast path reads (the first of each, as ``fast_accept._fields`` takes them)
            # and the framing ones. A pattern over the lines cost several times these
            # searches.
            low = b"\n" + block.lower()
            for refused in _LEAN_REFUSED:
                if refused in low:
                    return False
            span = _lean_span(low, block, b"\ncontent-length:")
            if span is None or _twice(low, b"\ncontent-length:"):
                return False
            length = block[span[0] : span[1]]
            if not length.isdigit() or len(length) > _LEAN_LENGTH_DIGITS:
                return False
            connection = _lean_value(low, block, b"\nconnection:")
            if connection is not None and (
                connection.lower() != b"keep-alive" or _twice(low, b"\nconnection:")
            ):
                return False
            authorization_value = _lean_value(low, block, b"\nauthorization:")
            idempotency_value = _lean_value(low, block, b"\nidempotency-key:")
            authorization = (
                None if authorization_value is None else authorization_value.decode("latin-1")
            )
            idempotency_key = (
                None if idempotency_value is None else idempotency_value.decode("latin-1")
            )
            self._lean_last = _LeanHead(
                block[: span[0]], block[span[1] :], authorization, idempotency_key
            )
        if len(data) != end + 4 + int(length):
            return False
        self._unset_keepalive_if_required()
        self._lean_pending = True
        loop = self.loop
        turn = _LEAN_TURNS.get(loop)
        if turn is None:
            turn = _LEAN_TURNS[loop] = []
            loop.call_soon(_answer_lean_turn, loop)
        assert self._direct is not None
        turn.append(
            _LeanRequest(
                self._direct,
                authorization,
                idempotency_key,
                length.decode("latin-1"),
                block,
                data[end + 4 :],
                self,
            )
        )
        return True

    def _lean_answered(self, keep_alive: bool) -> None:
        """After a lean request's answer: the connection goes on as after uvicorn's
        (``on_response_complete``): what arrived meanwhile, or the keep-alive timeout."""
        self._lean_pending = False
        self.server_state.total_requests += 1
        if not keep_alive or self._lean_closing or self.transport.is_closing():
            self.transport.close()
            return
        held, self._lean_held = self._lean_held, None
        if held is not None:
            self.flow.resume_reading()
            self.data_received(b"".join(held))
        elif self.cycle is None or self.cycle.response_complete:
            # Idle from now: the keep-alive timeout runs from here, as after uvicorn's
            # answers, but its timer is armed only when none is (a busy connection keeps
            # one, which finds it busy when it fires).
            self._lean_idle_since = self.loop.time()
            if self._lean_keep_alive is None:
                self._lean_keep_alive = self.loop.call_later(
                    self.timeout_keep_alive, self._lean_keep_alive_check
                )

    def _lean_keep_alive_check(self) -> None:
        """The keep-alive timer of lean answers: close the connection if it has been idle
        for the keep-alive time, else wait for the rest of it (a request under way re-arms
        it with its answer)."""
        self._lean_keep_alive = None
        since = self._lean_idle_since
        if since is None:
            return
        remaining = since + self.timeout_keep_alive - self.loop.time()
        if remaining <= 0:
            self.timeout_keep_alive_handler()
        else:
            self._lean_keep_alive = self.loop.call_later(remaining, self._lean_keep_alive_check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lean_keep_alive is not None:
            self._lean_keep_alive.cancel()
            self._lean_keep_alive = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._lean_pending:
            self._lean_closing = True
        else:
            super().shutdown()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        direct = self._direct
        if (
            direct is None
            or app is not self.app  # the concurrency limit's 503
            or cycle.waiting_for_100_continue
            or not direct.serves(cast("Scope", cycle.scope))
        ):
            super()._start_asgi_task(cycle, app)
            return
        # Answered with the other requests whose headers came in this turn of the loop, once
        # their bodies are here too (``_answer_turn``).
        loop = self.loop
        turn = _TURNS.get(loop)
        if turn is None:
            turn = _TURNS[loop] = []
            loop.call_soon(_answer_turn, loop)
        turn.append((direct, cycle, self))

    def start_task(self, answering: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``answering`` in a task of this connection (waited for at shutdown)."""
        if getattr(self.config, "reset_contextvars", False):  # as uvicorn does (its option)
            task = self.loop.create_task(answering, context=contextvars.Context())
        else:
            task = self.loop.create_task(answering)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        return task


#: Per event loop, the direct requests whose headers came in its current turn.
_TURNS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop,
    list[tuple[FastAccept, RequestResponseCycle, CoalescingHttpToolsProtocol]],
] = weakref.WeakKeyDictionary()


#: The request line of the one request taken without uvicorn's parser.
_LEAN_START = b"POST /v1/messages HTTP/1.1\r\n"
_LEAN_START_LENGTH = len(_LEAN_START)
#: The longest head taken that way (a longer one is uvicorn's).
_LEAN_HEAD_MAX = 8192
#: A head's header lines: each a token, a colon and a value of visible characters, spaces and
#: tabs (no other control character: no bare CR or LF, no NUL), ended by CRLF.
_LEAN_HEADER_LINES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")
#: Headers that decide how a request is framed or answered: a lean request has one
#: ``Content-Length`` and no other of them (but ``Connection: keep-alive``).
_LEAN_FRAMING = frozenset(
    (b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"connection")
)

#: Header lines (as found in a lower-cased head with an LF before its first line) that make a
#: request uvicorn's: another framing, an interim answer, an upgrade.
_LEAN_REFUSED = (b"\ntransfer-encoding:", b"\nexpect:", b"\nupgrade:")


def _lean_value(low: bytes, block: bytes, needle: bytes) -> bytes | None:
    """The value of the first header line ``needle`` finds in ``low`` (``b"\\n"`` and the
    lower-cased ``block``), from ``block`` itself, trimmed as uvicorn trims it; ``None``
    when there is none."""
    at = low.find(needle)
    if at < 0:
        return None
    start = at + len(needle)
    return block[start - 1 : low.index(b"\r", start) - 1].strip(b" \t")


def _lean_span(low: bytes, block: bytes, needle: bytes) -> tuple[int, int] | None:
    """Where ``_lean_value``'s value is in ``block`` (start and end, trimmed); ``None`` when
    there is none."""
    at = low.find(needle)
    if at < 0:
        return None
    start = at + len(needle) - 1
    end = low.index(b"\r", start + 1) - 1
    while start < end and block[start] in _BLANKS:
        start += 1
    while end > start and block[end - 1] in _BLANKS:
        end -= 1
    return start, end


#: Spaces and tabs, as bytes' values (what ``_lean_span`` trims).
_BLANKS = frozenset(b" \t")

#: The most digits a lean request's ``Content-Length`` has (more is uvicorn's to refuse; and
#: ``int`` refuses over 4,300 digits).
_LEAN_LENGTH_DIGITS = 15


class _LeanHead(NamedTuple):
    """A connection's last lean head, split around its ``Content-Length`` digits, and the
    two fields read from it."""

    before: bytes
    after: bytes
    authorization: str | None
    idempotency_key: str | None


def _twice(low: bytes, needle: bytes) -> bool:
    """Whether the header line ``needle`` finds is in ``low`` more than once."""
    return low.find(needle, low.find(needle) + 1) >= 0


class _LeanRequest:
    """A request taken whole: the fast path to answer it, the three fields it reads, its
    header lines (read in full only if the fast path cannot start it at once), its body and
    its connection."""

    __slots__ = (
        "authorization",
        "block",
        "body",
        "content_length",
        "direct",
        "idempotency_key",
        "protocol",
    )

    def __init__(
        self,
        direct: FastAccept,
        authorization: str | None,
        idempotency_key: str | None,
        content_length: str,
        block: bytes,
        body: bytes,
        protocol: CoalescingHttpToolsProtocol,
    ) -> None:
        self.direct = direct
        self.authorization = authorization
        self.idempotency_key = idempotency_key
        self.content_length = content_length
        self.block = block
        self.body = body
        self.protocol = protocol

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Every header, as uvicorn gives them: names lower-cased, values trimmed."""
        found: list[tuple[bytes, bytes]] = []
        for line in self.block[:-2].split(b"\r\n") if self.block else ():
            name, _, value = line.partition(b":")
            found.append((name.lower(), value.strip(b" \t")))
        return found


#: Per event loop, the lean requests taken in its current turn.
_LEAN_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_LeanRequest]] = (
    weakref.WeakKeyDictionary()
)


def _answer_lean_turn(loop: asyncio.AbstractEventLoop) -> None:
    """Answer the lean requests of the turn that just ended, together in one task, as
    ``_answer_turn`` answers the parsed ones."""
    turn = _LEAN_TURNS.pop(loop, None)
    if not turn:
        return
    task = turn[0].protocol.start_task(_answer_lean_together(turn))
    for request in turn[1:]:
        tasks = request.protocol.tasks
        if task not in tasks:
            tasks.add(task)
            task.add_done_callback(tasks.discard)


async def _answer_lean_together(turn: list[_LeanRequest]) -> None:
    """Start each lean request's accept (they share the writer's next batch), then write
    each answer in turn; one that cannot start at once, or whose client is not reading, is
    answered in a task of its own."""
    started: list[tuple[CoalescingHttpToolsProtocol, FastAnswer | Awaitable[FastAnswer]]] = []
    for request in turn:
        direct, body, protocol = request.direct, request.body, request.protocol
        try:
            answering = direct.start_fields(
                request.authorization, request.idempotency_key, request.content_length, body
            )
        except Exception as exc:  # rendering a problem failed: as _deliver handles it
            started.append((protocol, _raising(exc)))
            continue
        if answering is None:
            whole = partial(_whole_body, body)
            protocol.start_task(_deliver_lean(protocol, direct.answer(request.headers(), whole)))
            continue
        started.append((protocol, answering))
    for protocol, answering in started:
        if protocol.flow.write_paused:
            protocol.start_task(_deliver_lean(protocol, answering))
        else:
            await _deliver_lean(protocol, answering)


async def _whole_body(body: bytes) -> tuple[bytes, bool]:
    """A lean request's body: all of it at once."""
    return body, False


async def _deliver_lean(
    protocol: CoalescingHttpToolsProtocol, answering: FastAnswer | Awaitable[FastAnswer]
) -> None:
    """Write the answer to a lean request as ``_deliver`` writes a parsed one's (errors
    logged, a 500 and a close if the answer failed)."""
    keep_alive = True
    try:
        answer = answering if isinstance(answering, FastAnswer) else await answering
        if protocol.flow.write_paused and not protocol.transport.is_closing():
            await protocol.flow.drain()
        if not protocol.transport.is_closing():
            content, keep_alive = _response(
                protocol.server_state.default_headers, answer, keep_alive=True
            )
            coalesced = protocol._coalesced
            if coalesced is not None:
                coalesced.write_whole(content)
            else:
                protocol.transport.write(content)
    except Exception as exc:
        protocol.logger.error("Exception in ASGI application\n", exc_info=exc)
        keep_alive = False
        if not protocol.transport.is_closing():
            content, _ = _response(
                protocol.server_state.default_headers, _INTERNAL_ERROR, keep_alive=False
            )
            protocol.transport.write(content)
    protocol._lean_answered(keep_alive)


#: What uvicorn answers when the application fails before it answered (``send_500_response``).
_INTERNAL_ERROR = FastAnswer(
    500,
    [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"21"),
        (b"connection", b"close"),
    ],
    b"Internal Server Error",
)


def _answer_turn(loop: asyncio.AbstractEventLoop) -> None:
    """Answer the direct requests of the turn that just ended: those whose body is whole
    together, in one task (their accepts share the writer's next batch); any other on its
    own, reading its body as it comes."""
    turn = _TURNS.pop(loop, None)
    if not turn:
        return
    whole: list[tuple[FastAccept, RequestResponseCycle, CoalescingHttpToolsProtocol]] = []
    for direct, cycle, protocol in turn:
        if cycle.more_body or cycle.disconnected:
            protocol.start_task(_answer_directly(direct, cycle))
        else:
            whole.append((direct, cycle, protocol))
    if whole:
        task = whole[0][2].start_task(_answer_together(whole))
        for _, _, protocol in whole[1:]:
            if task not in protocol.tasks:
                protocol.tasks.add(task)
                task.add_done_callback(protocol.tasks.discard)


def _fast_accept_of(app: Any) -> FastAccept | None:
    """The fast path of ``app`` as uvicorn loaded it (a ``PigeonApp``, alone or behind
    uvicorn's proxy-headers middleware, which changes nothing the fast path reads), or
    ``None`` when anything else stands in front of it."""
    if isinstance(app, ProxyHeadersMiddleware):
        app = app.app
    return app.fast_accept if isinstance(app, PigeonApp) else None


async def _answer_directly(accept: FastAccept, cycle: RequestResponseCycle) -> None:
    """Answer the request of ``cycle`` with ``accept`` and write the response, as uvicorn's
    ``run_asgi`` would with the ASGI path (errors logged, a 500 if nothing was sent)."""
    await _deliver(cycle, accept.answer(cycle.scope["headers"], partial(_next_chunk, cycle)))


async def _answer_together(
    whole: list[tuple[FastAccept, RequestResponseCycle, CoalescingHttpToolsProtocol]],
) -> None:
    """Answer requests whose bodies are whole: each is started (``FastAccept.start``: its
    accept handed to the store's writer), then each answer awaited and written in turn. A
    request that cannot start at once is answered on its own; so is the write of an answer
    to a client that is not reading."""
    started: list[
        tuple[
            RequestResponseCycle,
            CoalescingHttpToolsProtocol,
            FastAnswer | Awaitable[FastAnswer],
        ]
    ] = []
    for direct, cycle, protocol in whole:
        body = bytes(cycle.body)
        try:
            answering = direct.start(cycle.scope["headers"], body)
        except Exception as exc:  # rendering a problem failed: as _deliver handles it
            started.append((cycle, protocol, _raising(exc)))
            continue
        if answering is None:
            protocol.start_task(_answer_directly(direct, cycle))  # reads the body itself
            continue
        cycle.body = bytearray()
        cycle.flow.resume_reading()
        started.append((cycle, protocol, answering))
    for cycle, protocol, answering in started:
        if cycle.flow.write_paused:
            protocol.start_task(_deliver(cycle, answering))
        else:
            await _deliver(cycle, answering)


async def _raising(error: Exception) -> FastAnswer:
    raise error


async def _deliver(
    cycle: RequestResponseCycle, answering: FastAnswer | Awaitable[FastAnswer]
) -> None:
    """Write the answer to ``cycle``'s request, as uvicorn's ``run_asgi`` would with the
    ASGI path (errors logged, a 500 if nothing was sent)."""
    try:
        answer = answering if isinstance(answering, FastAnswer) else await answering
        await _write(cycle, answer)
    except Exception as exc:
        cycle.logger.error("Exception in ASGI application\n", exc_info=exc)
        if not cycle.response_started:
            await cycle.send_500_response()
        else:
            cycle.transport.close()
    finally:
        cycle.on_response = _nothing


def _nothing() -> None:
    """What a finished exchange calls on a late response (nothing)."""


async def _next_chunk(cycle: RequestResponseCycle) -> tuple[bytes, bool]:
    """The body received so far and whether more follows (uvicorn's ``receive``)."""
    if not cycle.disconnected and not cycle.response_complete:
        cycle.flow.resume_reading()
        await cycle.message_event.wait()
        cycle.message_event.clear()
    if cycle.disconnected or cycle.response_complete:
        raise ClientGoneError
    body = bytes(cycle.body)
    cycle.body = bytearray()
    return body, cycle.more_body


#: The bytes uvicorn's ``send`` refuses in a header value (the ones ``HEADER_VALUE_RE``
#: matches), deleted in one ``bytes.translate``: about half the time of the search.
_FORBIDDEN_IN_VALUES = bytes(code for code in range(256) if HEADER_VALUE_RE.match(bytes([code])))

#: Header names found valid, with their lower-case form: the answers' names are a handful
#: (uvicorn's defaults and the fast path's own), each checked once instead of per answer.
_VALID_NAMES: dict[bytes, bytes] = {}
_VALID_NAMES_KEPT = 256


#: A header's value, from its (name, value) pair.
_VALUE = operator.itemgetter(1)


async def _write(cycle: RequestResponseCycle, answer: FastAnswer) -> None:
    """Write ``answer`` as uvicorn's ``send`` writes a response start and its one body, in
    one piece, and finish the exchange as it does."""
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected:
        return
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    content, cycle.keep_alive = _response(cycle.default_headers, answer, cycle.keep_alive)
    cycle.transport.write(content)
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()


def _response(
    default_headers: list[tuple[bytes, bytes]], answer: FastAnswer, keep_alive: bool
) -> tuple[bytes, bool]:
    """``answer`` as uvicorn's ``send`` writes a response start and its one body, in one
    piece, and whether the connection stays open after it."""
    defaults, defaults_close = _default_block(default_headers)
    content = [STATUS_LINE[answer.status], defaults]
    closing = defaults_close
    if closing:
        keep_alive = False
    headers = answer.headers
    # Every value at once: a tab, which a value may hold, joins them, and deleting the bytes
    # no value may hold shortens the whole exactly when one of them holds one.
    values = b"\t".join(map(_VALUE, headers))  # no comprehension's function per answer
    if len(values.translate(None, _FORBIDDEN_IN_VALUES)) != len(values):
        raise RuntimeError("Invalid HTTP header value.")
    for name, value in headers:
        lowered = _VALID_NAMES.get(name)
        if lowered is None:
            if HEADER_RE.search(name):
                raise RuntimeError("Invalid HTTP header name.")
            lowered = name.lower()
            if len(_VALID_NAMES) < _VALID_NAMES_KEPT:
                _VALID_NAMES[name] = lowered
        if lowered == b"connection" and _closes(value):
            keep_alive = False
            closing = True
        content += (lowered, b": ", value, b"\r\n")
    if not keep_alive and not closing:
        content.append(b"connection: close\r\n")
    content += (b"\r\n", answer.body)
    return b"".join(content), keep_alive


def _closes(value: bytes) -> bool:
    """Whether a ``Connection`` header's value asks for a close."""
    return b"close" in [token.lower().strip() for token in value.split(b",")]


#: The default headers uvicorn last gave (a new list every second, for its ``date``), and
#: them checked and written out, with whether they ask for a close: kept for the next answer.
_DEFAULTS: list[Any] = [None, b"", False]


def _default_block(default_headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bool]:
    """``default_headers`` written out as a response's header lines (checked as uvicorn's
    ``send`` checks them), and whether one asks for a close; worked out once per list."""
    if default_headers is _DEFAULTS[0]:
        return _DEFAULTS[1], _DEFAULTS[2]
    lines: list[bytes] = []
    closes = False
    for name, value in default_headers:
        if HEADER_RE.search(name):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(value):
            raise RuntimeError("Invalid HTTP header value.")
        lowered = name.lower()
        closes = closes or (lowered == b"connection" and _closes(value))
        lines += (lowered, b": ", value, b"\r\n")
    block = b"".join(lines)
    _DEFAULTS[:] = [default_headers, block, closes]
    return block, closes
