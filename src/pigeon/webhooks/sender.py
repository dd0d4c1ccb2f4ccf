"""Posting webhooks over HTTP with our own lean HTTP/1.1 client.

One ``HttpClient`` (``pigeon.webhooks.http_client``) is shared by every delivery, so
connections to a receiver are kept alive and reused (bounded in total and per host). It is
created on first use, inside the running event loop, and the sender belongs to that loop from
then on (until ``close``).

The client replaced aiohttp here because posting a webhook is a hot path and only its status
matters: the answer is parsed by ``httptools`` straight from the protocol callbacks, with no
stream machinery, which costs a fraction of the CPU.

Redirects are not followed: a ``3xx`` is returned like any other status (and retried by the
caller). At most 64 KiB of the response body is read, then discarded; a receiver's answer
matters only by its status. No cookies are stored or sent, no proxy settings of the environment
are read and nothing is decompressed, so one receiver cannot influence what another one gets.
This module maps the client's failures to ``TemporaryFailure`` with a short detail.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Mapping

from pigeon.domain.errors import TemporaryFailure
from pigeon.webhooks.http_client import (
    ConnectFailure,
    Disconnected,
    DnsFailure,
    HttpClient,
    HttpClientError,
    InvalidUrl,
    NotHttpUrl,
    TlsFailure,
)

__all__ = ["MAX_RESPONSE_BYTES", "USER_AGENT", "HttpWebhookSender"]

MAX_RESPONSE_BYTES = 64 * 1024
"""The most of a receiver's response body that is read before the connection is dropped."""

USER_AGENT = "Pigeon-Webhooks/1"

_MAX_DETAIL = 200


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _describe(exc: BaseException, url: str, timeout: float) -> str:
    """A short, log-friendly account of why a request got no answer."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, DnsFailure):
        return _short(f"DNS lookup failed for {exc.host}")
    if isinstance(exc, TlsFailure):
        return _short(f"TLS error with {exc.host}:{exc.port}")
    if isinstance(exc, ConnectFailure):
        if isinstance(exc.os_error, ConnectionRefusedError):
            reason = "connection refused"
        else:
            reason = exc.os_error.strerror or type(exc.os_error).__name__
        return _short(f"cannot connect to {exc.host}:{exc.port}: {reason}")
    if isinstance(exc, NotHttpUrl):
        return _short(f"not an http(s) URL: {url}")
    if isinstance(exc, InvalidUrl):
        return _short(f"invalid URL {url}")
    if isinstance(exc, Disconnected):
        return "server disconnected without answering"
    return _short(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _failure(url: str, timeout: float, error: BaseException) -> BaseException:
    """The error ``send`` raises for ``error`` (``start_send``'s translation)."""
    if isinstance(error, HttpClientError | TimeoutError | OSError):
        failure = TemporaryFailure(_describe(error, url, timeout))
        failure.__cause__ = error
        return failure
    return error


class HttpWebhookSender:
    """A ``WebhookSender`` over one pool of keep-alive connections; call ``close`` when done."""

    def __init__(self, *, limit: int = 100, limit_per_host: int = 10) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._client: HttpClient | None = None
        #: The thread the client's loop runs on.
        self._thread = -1

    def _pool(self) -> HttpClient:
        client = self._client
        if client is not None:
            # While the client's loop runs on this thread it is the running loop (one loop
            # runs per thread): that saves ``asyncio.get_running_loop()``, a ``getpid``
            # system call per delivery on Python 3.11.
            loop = client.loop
            here = loop.is_running() and threading.get_ident() == self._thread
            if not here and loop is not asyncio.get_running_loop():
                raise RuntimeError("HttpWebhookSender is used from another event loop")
            return client
        self._thread = threading.get_ident()
        client = self._client = HttpClient(
            limit=self._limit,
            limit_per_host=self._limit_per_host,
            user_agent=USER_AGENT,
            max_body=MAX_RESPONSE_BYTES,
        )
        return client

    # The ``timeout`` parameter is part of the ``WebhookSender`` port.
    async def send(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,
    ) -> int:
        """POST ``body`` with ``headers`` to ``url``; the HTTP status of the answer.

        ``timeout`` (seconds) bounds the whole exchange; if it runs out while the response body
        is being read, the status already received is returned. Network errors, timeouts, DNS
        failures, refused connections and invalid URLs raise ``TemporaryFailure`` with a short
        detail.
        """
        client = self._pool()
        try:
            return await client.post(url, headers, body, timeout)
        except (HttpClientError, TimeoutError, OSError) as exc:
            raise TemporaryFailure(_describe(exc, url, timeout)) from exc

    def start_send(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> asyncio.Future[int] | None:
        """``send`` written now on an idle connection to the host, without a coroutine: the
        future of its status, which ends as ``send`` would return or raise. ``None`` when
        no idle connection is free; then ``send`` it."""
        return self._pool().start_post(
            url, headers, body, timeout, functools.partial(_failure, url, timeout)
        )

    def connection_wait(self, url: str) -> asyncio.Future[None] | None:
        """After ``start_send`` gave ``None`` because every connection to the host is busy:
        a future that the next one to come free ends (``start_send`` may then start);
        ``None`` when waiting would not help (then ``send``)."""
        return self._pool().connection_wait(url)

    async def close(self) -> None:
        """Close the pool and its connections; a later ``send`` opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
