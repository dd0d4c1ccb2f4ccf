"""Posting webhooks over HTTP with aiohttp.

One ``aiohttp.ClientSession`` is shared by every delivery, so connections to a receiver are kept
alive and reused (bounded in total and per host). The session is created on first use, inside
the running event loop, and the sender belongs to that loop from then on.

Redirects are not followed: a ``3xx`` is returned like any other status (and retried by the
caller). At most 64 KiB of the response body is read, then discarded; a receiver's answer
matters only by its status. Cookies are neither stored nor sent, and proxy settings of the
environment are ignored, so one receiver cannot influence what another one gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from pigeon.domain.errors import TemporaryFailure

__all__ = ["MAX_RESPONSE_BYTES", "USER_AGENT", "AiohttpWebhookSender"]

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
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return _short(f"DNS lookup failed for {exc.host}")
    if isinstance(exc, aiohttp.ClientSSLError):
        return _short(f"TLS error with {exc.host}:{exc.port}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            reason = "connection refused"
        else:
            reason = exc.strerror or type(exc.os_error).__name__
        return _short(f"cannot connect to {exc.host}:{exc.port}: {reason}")
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return _short(f"not an http(s) URL: {url}")
    if isinstance(exc, aiohttp.InvalidURL):
        return _short(f"invalid URL {url}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected without answering"
    return _short(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


class AiohttpWebhookSender:
    """A ``WebhookSender`` over one pooled aiohttp session; call ``close`` when done."""

    def __init__(self, *, limit: int = 100, limit_per_host: int = 10) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed:
            if loop is not self._loop:
                raise RuntimeError("AiohttpWebhookSender is used from another event loop")
            return self._session
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit_per_host),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
            auto_decompress=False,
        )
        self._loop = loop
        return self._session

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
        session = self._client()
        try:
            async with session.post(
                url,
                data=body,
                headers=dict(headers),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                await self._drain(response)
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TemporaryFailure(_describe(exc, url, timeout)) from exc

    @staticmethod
    async def _drain(response: aiohttp.ClientResponse) -> None:
        """Read and discard up to ``MAX_RESPONSE_BYTES`` of the body.

        The status is the answer: a body that is too long, broken or too slow only costs the
        connection, which is then closed rather than reused.
        """
        remaining = MAX_RESPONSE_BYTES
        try:
            while remaining > 0:
                chunk = await response.content.read(remaining)
                if not chunk:
                    return
                remaining -= len(chunk)
            if not response.content.at_eof():
                response.close()
        except (aiohttp.ClientError, TimeoutError, OSError):
            response.close()

    async def close(self) -> None:
        """Close the session and its connections; a later ``send`` opens a new one."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
