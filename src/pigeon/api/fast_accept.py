"""``POST /v1/messages`` answered in front of Litestar, without its per-request machinery.

Why this exists: sending a message over REST is the hot path, and it is CPU-bound. py-spy on
``bench/run.py --scenario accept`` showed Litestar's own work for this one route (ASGI router,
exception middleware, dependency and header-parameter resolution, ``Request``/``Response``
objects, response encoding) costing about as much CPU as Pigeon's whole accept logic. Measured
on the 2-core benchmark VM, SQLite, the app called as an ASGI server calls it, 64 concurrent
sends, 5,000 per run, ``time.process_time``: ~315 us of CPU per accepted message through
Litestar, ~238 us through this path (-25 %); through httpx's ``ASGITransport`` (client CPU
included) ~585 us -> ~447 us.

What it does: ``FastAccept.serves`` claims exactly ``POST /v1/messages`` over HTTP with no query
string and no root path; ``PigeonApp`` (``pigeon.api.app``) hands everything else to Litestar
unchanged (other paths and methods, a trailing slash, websockets, lifespan). For what it claims
it calls what the Litestar route calls, in the same order: ``services.authenticate`` on the
first ``Authorization`` header (what the ``caller`` dependency does), then
``routes.messages.send_one`` (Idempotency-Key, body, ``services.accept``, ``message_response``);
errors go through ``problems.error_problem``, the function behind the app's exception handlers.
Only the HTTP plumbing is its own: reading the body under the same size limit (413 on the
announced ``Content-Length`` or on the bytes received, 400 on an unreadable ``Content-Length``),
and writing the answer with the same status, headers (same order) and bytes. The Litestar route
stays registered, for the OpenAPI document and for requests this path does not claim;
``tests/integration/test_api_fast_accept.py`` runs every kind of request through both and
compares the answers.

``FastAccept.answer`` is the whole answer as one value; ``__call__`` serves it over ASGI, and
``pigeon.api.http_protocol`` writes it straight to the connection, without the ASGI cycle
(uvicorn's middleware, the ``receive``/``send`` events and their checks).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TypeGuard

import msgspec
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import HTTPReceiveMessage, HTTPScope, LifeSpanScope, Receive, Scope, Send

from pigeon.api.dependencies import ApiServices
from pigeon.api.problems import PROBLEM_MEDIA_TYPE, error_problem
from pigeon.api.routes.messages import Sent, send_one, start_send_one
from pigeon.domain.value_objects import value_object

__all__ = ["ClientGoneError", "FastAccept", "FastAnswer", "NextChunk"]

PATH = "/v1/messages"
METHOD = "POST"
JSON_MEDIA_TYPE = b"application/json"

PROBLEM_MEDIA_TYPE_BYTES = PROBLEM_MEDIA_TYPE.encode()

_encoder = msgspec.json.Encoder()

#: Reads a request's body: the next piece of it and whether more follow. Raises
#: ``ClientGoneError`` when the client went away first.
NextChunk = Callable[[], Awaitable[tuple[bytes, bool]]]


class ClientGoneError(InternalServerException):
    """The client went away before its request's body was whole (nobody reads the answer)."""

    def __init__(self) -> None:
        super().__init__("client disconnected prematurely")


@value_object
class FastAnswer:
    """A complete response: status, headers (lower-cased names, content type and length
    last) and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class FastAccept:
    """The ASGI application for ``POST /v1/messages`` alone (ask ``serves`` first)."""

    __slots__ = ("_limit", "_max_body_bytes", "_services")

    def __init__(self, services: ApiServices, *, max_body_bytes: int | None) -> None:
        self._services = services
        #: The limit named in a 413's detail, as Litestar's route would name it.
        self._max_body_bytes = max_body_bytes
        #: The limit enforced (none when 0 or None, as in Litestar).
        self._limit: float = max_body_bytes or math.inf

    @staticmethod
    def serves(scope: Scope | LifeSpanScope) -> TypeGuard[HTTPScope]:
        """Whether this is the one request this path answers; anything else goes to Litestar."""
        if scope["type"] != ScopeType.HTTP:
            return False
        http: HTTPScope = scope  # type: ignore[assignment]  # narrowed by "type" above
        return (
            http["method"] == METHOD
            and http["path"] == PATH
            and not http.get("query_string")
            and not http.get("root_path")
        )

    async def __call__(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        """Answer one ``POST /v1/messages`` as an ASGI application."""
        answer = await self.answer(scope["headers"], partial(_asgi_chunk, receive))
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        )
        await send({"type": "http.response.body", "body": answer.body, "more_body": False})

    async def answer(
        self, headers: Iterable[tuple[bytes, bytes]], next_chunk: NextChunk
    ) -> FastAnswer:
        """The whole answer to one ``POST /v1/messages`` with these request ``headers`` (names
        lower-cased, as ASGI gives them), reading the body with ``next_chunk``. Every error is
        a problem answer; this raises only if rendering that problem fails."""
        authorization, idempotency_key, content_length = _fields(headers)
        services = self._services
        try:
            caller = await services.authenticate(authorization)
            sent = await send_one(
                caller,
                services,
                idempotency_key,
                partial(self._read_body, next_chunk, content_length),
            )
        except Exception as exc:  # every error becomes a problem, as in Litestar
            return self._problem(exc, authorization)
        return _answer(202, sent.headers, JSON_MEDIA_TYPE, _encoder.encode(sent.message))

    def start(
        self, headers: Iterable[tuple[bytes, bytes]], body: bytes
    ) -> FastAnswer | Awaitable[FastAnswer] | None:
        """``answer`` for a request whose whole ``body`` is here, without a coroutine up to
        the store: the answer itself (a problem found at once), or what to await for it (the
        accept handed to the store's writer, which the requests of one turn of the loop
        share). ``None``, with nothing done, when the caller or the tenant's endpoints are
        not cached fresh: then ``answer`` it."""
        authorization, idempotency_key, content_length = _fields(headers)
        return self.start_fields(authorization, idempotency_key, content_length, body)

    def start_fields(
        self,
        authorization: str | None,
        idempotency_key: str | None,
        content_length: str | None,
        body: bytes,
    ) -> FastAnswer | Awaitable[FastAnswer] | None:
        """``start`` given the request's ``Authorization``, ``Idempotency-Key`` and
        ``Content-Length`` values (the first of each) instead of its headers."""
        services = self._services
        caller = services.authenticate.cached(authorization)
        if caller is None:
            return None
        try:
            self._check_body(body, content_length)
            sending = start_send_one(caller, services, idempotency_key, body)
        except Exception as exc:  # every error becomes a problem, as in Litestar
            return self._problem(exc, authorization)
        if sending is None:
            return None
        return self._answered(sending, authorization)

    async def _answered(self, sending: Awaitable[Sent], authorization: str | None) -> FastAnswer:
        try:
            sent = await sending
        except Exception as exc:  # every error becomes a problem, as in Litestar
            return self._problem(exc, authorization)
        return _answer(202, sent.headers, JSON_MEDIA_TYPE, _encoder.encode(sent.message))

    def _problem(self, exc: Exception, authorization: str | None) -> FastAnswer:
        problem = error_problem(
            exc,
            method=METHOD,
            path=PATH,
            authorization=authorization,
            max_body_bytes=self._max_body_bytes,
        )
        return _answer(problem.status, problem.headers, PROBLEM_MEDIA_TYPE_BYTES, problem.body)

    def _check_length(self, content_length: str | None) -> None:
        """Refuse an unreadable Content-Length (400) or one over the limit (413)."""
        if content_length is not None:
            try:
                announced = int(content_length)
            except ValueError:
                raise ClientException(f"Invalid content-length: {content_length!r}") from None
            if announced > self._limit:
                raise RequestEntityTooLarge

    def _check_body(self, body: bytes, content_length: str | None) -> None:
        """What ``_read_body`` refuses, for a body already whole."""
        self._check_length(content_length)
        if len(body) > self._limit:
            raise RequestEntityTooLarge

    async def _read_body(self, next_chunk: NextChunk, content_length: str | None) -> bytes:
        """The whole body, refused (413) once it is known to exceed the limit."""
        limit = self._limit
        self._check_length(content_length)
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            chunk, more = await next_chunk()
            if chunk:
                received += len(chunk)
                if received > limit:
                    raise RequestEntityTooLarge
                chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _fields(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None, str | None]:
    """The request's Authorization, Idempotency-Key and Content-Length values: the first of
    each, like Litestar's case-insensitive multi-dict ``get``. The names are lower-case, as
    ASGI servers give them (uvicorn's protocol lowers them as it parses)."""
    authorization: str | None = None
    idempotency_key: str | None = None
    content_length: str | None = None
    for name, raw_value in headers:
        if name == b"authorization":
            if authorization is None:
                authorization = raw_value.decode("latin-1")
        elif name == b"idempotency-key":
            if idempotency_key is None:
                idempotency_key = raw_value.decode("latin-1")
        elif name == b"content-length" and content_length is None:
            content_length = raw_value.decode("latin-1")
    return authorization, idempotency_key, content_length


async def _asgi_chunk(receive: Receive) -> tuple[bytes, bool]:
    """The next piece of an ASGI request's body and whether more follow (see ``NextChunk``)."""
    while True:
        event: HTTPReceiveMessage = await receive()  # type: ignore[assignment]  # http scope
        if event["type"] == "http.request":
            return event["body"], event.get("more_body", False)
        if event["type"] == "http.disconnect":
            raise ClientGoneError


def _answer(
    status: int, headers: dict[str, str] | None, media_type: bytes, body: bytes
) -> FastAnswer:
    """A complete answer: ``headers`` (lower-cased), then content type and length."""
    raw: list[tuple[bytes, bytes]] = []
    if headers:
        for name, value in headers.items():  # a loop: no comprehension's function per answer
            raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    raw.append((b"content-type", media_type))
    raw.append((b"content-length", str(len(body)).encode("latin-1")))
    return FastAnswer(status, raw, body)
