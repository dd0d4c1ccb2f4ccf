"""The webhook HTTP client's URL handling, request heads and response parsing, without sockets."""

from __future__ import annotations

import asyncio
import base64
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.webhooks.http_client import (
    BadResponse,
    Disconnected,
    HttpClient,
    InvalidUrl,
    NotHttpUrl,
    _Connection,
    _Host,
    parse_target,
)

MAX_BODY = 64 * 1024


# --- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "key", "host_header", "request_line"),
    [
        ("http://example.com/hook", ("http", "example.com", 80), "example.com", "/hook"),
        ("https://example.com", ("https", "example.com", 443), "example.com", "/"),
        ("http://example.com:80/h", ("http", "example.com", 80), "example.com", "/h"),
        ("http://EXAMPLE.com:8080/h", ("http", "example.com", 8080), "example.com:8080", "/h"),
        ("HTTPS://a.b:8443/x?y=1&z", ("https", "a.b", 8443), "a.b:8443", "/x?y=1&z"),
        ("http://[::1]:8080/x", ("http", "::1", 8080), "[::1]:8080", "/x"),
        ("http://[2001:db8::1]/x", ("http", "2001:db8::1", 80), "[2001:db8::1]", "/x"),
        ("http://h/p%20q?a=%2F#frag", ("http", "h", 80), "h", "/p%20q?a=%2F"),
        ("http://h/p q", ("http", "h", 80), "h", "/p%20q"),
    ],
)
def test_targets_name_the_pool_key_host_header_and_request_target(
    url: str, key: tuple[str, str, int], host_header: str, request_line: str
) -> None:
    """A URL gives the (scheme, host, port) key, the Host header and the path+query as sent."""
    target = parse_target(url)

    assert target.key == key
    assert target.host_header == host_header
    assert target.request_line == f"POST {request_line} HTTP/1.1\r\n"
    assert target.tls == (key[0] == "https")


def test_credentials_in_the_url_become_basic_authorization() -> None:
    """user:password in the URL turn into an Authorization header, as aiohttp did."""
    target = parse_target("https://us%40er:p%3Ass@example.com/hook")

    assert target.authorization == "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    assert target.host_header == "example.com"


def test_a_non_ascii_host_is_sent_in_its_ascii_form() -> None:
    """An internationalised host name is IDNA-encoded."""
    assert parse_target("http://bücher.example/").host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "url", ["http:///x", "http://h:99999/", "http//h/x", "/relative", "http://[zz]/", "http://a b/"]
)
def test_unusable_urls_are_invalid(url: str) -> None:
    """URLs without a usable host or port are InvalidUrl."""
    with pytest.raises(InvalidUrl) as caught:
        parse_target(url)
    assert not isinstance(caught.value, NotHttpUrl)


@pytest.mark.parametrize("url", ["ftp://h/x", "mailto:a@b", "ws://h/"])
def test_other_schemes_are_not_http(url: str) -> None:
    """Schemes other than http and https are NotHttpUrl."""
    with pytest.raises(NotHttpUrl):
        parse_target(url)


# --- request heads ------------------------------------------------------------------------------


def _client() -> HttpClient:
    return HttpClient(limit=10, limit_per_host=2, user_agent="Agent/1", max_body=MAX_BODY)


def _fields(head: bytes) -> tuple[str, dict[str, str]]:
    text = head.decode()
    assert text.endswith("\r\n\r\n")
    first, *lines = text[:-4].split("\r\n")
    return first, {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}


async def test_a_head_has_the_default_headers_and_the_callers() -> None:
    """Host, User-Agent, a default Content-Type and Content-Length precede the caller's own."""
    client = _client()
    target = client.target("http://h:81/x?q")

    first, fields = _fields(client.encode_head(target, {"Webhook-Id": "e1"}, 12))

    assert first == "POST /x?q HTTP/1.1"
    assert fields == {
        "host": "h:81",
        "user-agent": "Agent/1",
        "content-type": "application/octet-stream",
        "content-length": "12",
        "webhook-id": "e1",
    }


async def test_callers_may_replace_defaults_but_not_the_length() -> None:
    """A caller's Host, User-Agent and Content-Type win; its Content-Length is ignored."""
    client = _client()
    target = client.target("http://h/x")
    headers = {
        "host": "other",
        "User-Agent": "Mine",
        "Content-Type": "application/json",
        "Content-Length": "999",
        "Transfer-Encoding": "chunked",
    }

    _, fields = _fields(client.encode_head(target, headers, 3))

    assert fields == {
        "host": "other",
        "user-agent": "Mine",
        "content-type": "application/json",
        "content-length": "3",
    }


@pytest.mark.parametrize(
    "headers",
    [{"X": "a\r\nEvil: 1"}, {"X": "a\nb"}, {"X": "a\rb"}, {"X": "a\0"}, {"Bad Name": "v"}],
)
async def test_headers_that_would_split_the_request_are_refused(headers: dict[str, str]) -> None:
    """CR, LF or NUL in a value, or a name that is not a token, raise ValueError, also the
    second time, once the names are known."""
    client = _client()

    for _ in range(2):
        with pytest.raises(ValueError, match="HTTP header"):
            client.encode_head(client.target("http://h/"), headers, 0)


async def test_heads_with_the_same_header_names_differ_only_by_their_values() -> None:
    """A second request with the same names, one of them Content-Length, gets its own values
    and still our length."""
    client = _client()
    target = client.target("http://h/x")
    for value in ("one", "two"):
        headers = {"Content-Length": "7", "Webhook-Id": value, "Content-Type": "text/plain"}
        _, fields = _fields(client.encode_head(target, headers, 5))
        assert fields["webhook-id"] == value
        assert fields["content-length"] == "5"
        assert fields["content-type"] == "text/plain"


async def test_percent_signs_in_the_path_names_and_values_are_sent_as_they_are() -> None:
    """The head's kept template treats ``%`` in the request target, a header name and a
    value as text, on the first request and on a repeat."""
    client = _client()
    target = client.target("http://h/a%20b")
    for _ in range(2):
        first, fields = _fields(client.encode_head(target, {"X%y": "50% %s %d"}, 4))
        assert first == "POST /a%20b HTTP/1.1"
        assert fields["x%y"] == "50% %s %d"
        assert fields["content-length"] == "4"


async def test_each_target_gets_its_own_head_with_the_same_names() -> None:
    """Two targets asked with the same header names each get their own host and path, also
    a target made anew for a URL the client was asked before."""
    client = _client()
    for url, host, path in [
        ("http://one/x", "one", "/x"),
        ("http://two:8080/y", "two:8080", "/y"),
        ("http://one/x", "one", "/x"),
    ]:
        for target in (client.target(url), parse_target(url)):
            first, fields = _fields(client.encode_head(target, {"Webhook-Id": "e"}, 1))
            assert first == f"POST {path} HTTP/1.1"
            assert fields["host"] == host


# --- response parsing ---------------------------------------------------------------------------


class FakeTransport(asyncio.Transport):
    """Records writes; closing is only noted."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closing = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Keep what was written."""
        self.written += bytes(data)

    def is_closing(self) -> bool:
        """Whether close or abort was called."""
        return self.closing

    def close(self) -> None:
        """Note a graceful close."""
        self.closing = True

    def abort(self) -> None:
        """Note an abort."""
        self.closing = self.aborted = True


def _connection() -> tuple[_Connection, FakeTransport]:
    host = _Host(("http", "h", 80))
    conn = _Connection(host, MAX_BODY, lambda _conn: None, asyncio.get_running_loop())
    transport = FakeTransport()
    conn.connection_made(transport)
    return conn, transport


async def _answer(
    pieces: list[bytes], *, lost: bool = False
) -> tuple[int | BaseException, _Connection]:
    """Run one exchange fed ``pieces`` of answer; the status (or error) and the connection."""
    conn, _ = _connection()
    task = asyncio.ensure_future(conn.exchange(b"POST / HTTP/1.1\r\n\r\n", b""))
    await asyncio.sleep(0)
    for piece in pieces:
        if task.done():
            break
        conn.data_received(piece)
    if lost and not task.done():
        conn.connection_lost(None)
    try:
        return await task, conn
    except Exception as exc:
        return exc, conn


ANSWERS = {
    "content-length": (b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello", 201, True),
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        200,
        True,
    ),
    "continue": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        204,
        True,
    ),
    "connection-close": (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        200,
        False,
    ),
    "http-1.0": (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, False),
    "redirect": (b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", 302, True),
}


@pytest.mark.parametrize("name", list(ANSWERS))
async def test_answers_give_their_status_and_whether_the_connection_may_stay(name: str) -> None:
    """Each answer shape yields the final status, and keep-alive only when the server allows."""
    data, status, reusable = ANSWERS[name]

    got, conn = await _answer([data])

    assert got == status
    assert conn.reusable is reusable


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(ANSWERS)),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_answers_split_anywhere_parse_the_same(name: str, cuts: list[int]) -> None:
    """However the bytes of an answer are split across reads, status and keep-alive agree."""
    data, status, reusable = ANSWERS[name]
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points) if b > a]

    got, conn = asyncio.run(_answer(pieces))

    assert got == status
    assert conn.reusable is reusable


async def test_a_body_over_the_limit_settles_with_the_status_and_no_reuse() -> None:
    """Past max_body bytes of body the status is returned at once and the connection not kept."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY * 4)

    got, conn = await _answer([head, b"x" * MAX_BODY, b"x"])

    assert got == 200
    assert not conn.reusable
    assert not conn.settled_cleanly


async def test_a_close_delimited_body_ends_with_the_connection() -> None:
    """A body without length ends when the connection does; the status stands."""
    got, conn = await _answer([b"HTTP/1.0 200 OK\r\n\r\nsome"], lost=True)

    assert got == 200
    assert not conn.reusable


async def test_a_second_message_after_the_answer_forbids_reuse() -> None:
    """Bytes after the complete answer mean the connection cannot be trusted again."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    got, conn = await _answer([answer + b"HTTP/1.1 200 OK\r\n"])

    assert got == 200
    assert not conn.reusable


async def test_garbage_is_a_bad_response() -> None:
    """Bytes that are not an HTTP response raise BadResponse."""
    got, _ = await _answer([b"SSH-2.0-OpenSSH\r\n\r\n"])

    assert isinstance(got, BadResponse)


async def test_a_connection_lost_before_the_status_is_a_disconnect() -> None:
    """Losing the connection before the status line raises Disconnected (status unknown)."""
    got, conn = await _answer([b"HTTP/1.1 20"], lost=True)

    assert isinstance(got, Disconnected)
    assert conn.received


async def test_bytes_while_idle_close_the_connection() -> None:
    """A server speaking while no request is pending gets its connection aborted."""
    conn, transport = _connection()

    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\n")

    assert transport.aborted
