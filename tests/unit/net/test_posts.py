"""`PostClient` (`ipt_core/net/posts.py`) against servers on loopback: what it sends, which
answers it takes, when it reuses a connection, and what it refuses."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import pytest
import trustme

from ipt_core.net import BrokenAnswer, DestinationPolicy, DestinationRefused, PostClient
from tests.support.scripted_http import Reply, Request, ScriptedServer

LOOPBACK = DestinationPolicy.parse(["127.0.0.0/8", "::1"])
HEADERS = {"content-type": "application/cloudevents+json", "webhook-id": "evt-1"}


def client(timeout_s: float = 5, ssl_context: ssl.SSLContext | None = None) -> PostClient:
    return PostClient(LOOPBACK, timeout_s=timeout_s, ssl_context=ssl_context)


def replies(*data: bytes, close: bool = False) -> Callable[[Request, int], Reply]:
    """A script answering the n-th request with the n-th of `data` (the last one after)."""
    return lambda request, n: Reply(data[min(n, len(data)) - 1], close=close)


async def test_a_post_arrives_as_sent_and_its_answer_is_read() -> None:
    answer = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\ncontent-length: 2\r\n\r\nno"
    async with ScriptedServer(replies(answer)) as server:
        posts = client()
        got = await posts.post(server.url_at(path="/hooks/a?b=c%20d"), b'{"x": 1}', HEADERS)
        await posts.aclose()
    assert (got.status, got.retry_after) == (429, "7")
    (request,) = server.requests
    assert request.head.startswith(b"POST /hooks/a?b=c%20d HTTP/1.1\r\n")
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["content-length"] == "8"
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert request.headers["webhook-id"] == "evt-1"
    assert request.body == b'{"x": 1}'


async def test_a_kept_alive_connection_is_reused() -> None:
    async with ScriptedServer() as server:
        posts = client()
        statuses = [(await posts.post(server.url, b"{}", HEADERS)).status for _ in range(3)]
        await posts.aclose()
    assert statuses == [204, 204, 204]
    assert server.connections == 1


async def test_connection_close_is_honoured() -> None:
    closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    async with ScriptedServer(replies(closing)) as server:
        posts = client()
        for _ in range(3):
            assert (await posts.post(server.url, b"{}", HEADERS)).status == 200
        await posts.aclose()
    assert server.connections == 3


async def test_a_kept_connection_the_server_drops_is_replaced_once() -> None:
    # The second request finds its connection closed without an answer (the server let it go
    # as it was reused): it goes again on a new connection, and succeeds.
    def script(request: Request, n: int) -> Reply:
        return Reply(None, close=True) if n == 2 else Reply()

    async with ScriptedServer(script) as server:
        posts = client()
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 204
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 204
        await posts.aclose()
    assert [r.connection for r in server.requests] == [1, 1, 2]


async def test_a_new_connection_that_breaks_is_not_tried_again() -> None:
    async with ScriptedServer(lambda request, n: Reply(None, close=True)) as server:
        posts = client()
        with pytest.raises(BrokenAnswer):
            await posts.post(server.url, b"{}", HEADERS)
        await posts.aclose()
    assert len(server.requests) == 1


async def test_interim_answers_are_skipped() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
    async with ScriptedServer(replies(interim)) as server:
        posts = client()
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 202
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 202
        await posts.aclose()
    assert server.connections == 1


async def test_chunked_and_close_delimited_bodies_are_read() -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    to_the_end = b"HTTP/1.1 201 Created\r\n\r\nthe body ends with the connection"
    async with ScriptedServer(replies(chunked)) as server:
        posts = client()
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 200
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 200
        assert server.connections == 1  # a chunked body ended where it said: kept

    async with ScriptedServer(lambda request, n: Reply(to_the_end, close=True)) as server:
        posts = client()
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 201
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 201
        await posts.aclose()
    assert server.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",  # cut short
        b"HTTP/1.1 200 OK\r\ncontent-le",  # cut in its headers
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"x-long: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=["cut-short", "cut-in-headers", "not-http", "upgrade", "headers-too-long"],
)
async def test_a_broken_answer_is_an_error_and_the_next_post_starts_afresh(answer: bytes) -> None:
    def script(request: Request, n: int) -> Reply:
        return Reply(answer, close=True) if n == 1 else Reply()

    async with ScriptedServer(script) as server:
        posts = client()
        with pytest.raises(BrokenAnswer):
            await posts.post(server.url, b"{}", HEADERS)
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 204
        await posts.aclose()
    assert server.connections == 2


async def test_a_large_body_is_not_read_to_its_end() -> None:
    size = 3 * 1024 * 1024
    large = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"x" * size
    async with ScriptedServer(replies(large)) as server:
        posts = client()
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 200
        assert (await posts.post(server.url, b"{}", HEADERS)).status == 200
        await posts.aclose()
    assert server.connections == 2  # the first was closed, not drained


async def test_a_silent_server_times_out_within_the_deadline() -> None:
    async with ScriptedServer(lambda request, n: Reply(None)) as server:
        posts = client(timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await posts.post(server.url, b"{}", HEADERS)
        assert time.monotonic() - started < 2
        await posts.aclose()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "127.1"])
async def test_refused_destinations_are_never_connected(host: str) -> None:
    async with ScriptedServer() as server:
        posts = PostClient(DestinationPolicy(), timeout_s=2)  # public addresses only
        with pytest.raises(DestinationRefused):
            await posts.post(server.url_at(host), b"{}", HEADERS)
        await posts.aclose()
    assert server.connections == 0  # not even a TCP handshake


@pytest.mark.parametrize(
    "headers",
    [
        {"x-trace": "a\r\nx-injected: 1"},
        {"x-trace": "caf\u00e9"},
        {"bad name": "1"},
        {"host": "elsewhere.example"},
        {"Content-Length": "1"},
        {"transfer-encoding": "chunked"},
    ],
    ids=["crlf", "non-ascii", "bad-name", "host", "content-length", "transfer-encoding"],
)
async def test_headers_that_could_not_be_sent_as_given_are_refused(
    headers: dict[str, str],
) -> None:
    async with ScriptedServer() as server:
        posts = client()
        with pytest.raises(ValueError, match="cannot be sent") as refused:
            await posts.post(server.url, b"{}", headers)
        await posts.aclose()
    assert server.connections == 0
    for value in headers.values():
        assert value not in str(refused.value)  # a value may be a secret: never echoed


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "http:///nohost", "not a url"])
async def test_urls_that_are_not_http_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        await client().post(url, b"{}", HEADERS)


async def test_tls_is_verified_against_the_host_name() -> None:
    authority = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(served)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with ScriptedServer(tls=served) as server:
        posts = client(ssl_context=trusting)
        assert (await posts.post(server.url_at("localhost"), b"{}", HEADERS)).status == 204
        assert (await posts.post(server.url_at("localhost"), b"{}", HEADERS)).status == 204
        await posts.aclose()
        assert server.connections == 1
        # The same certificate does not name 127.0.0.1; and the default CAs do not trust it.
        for posts, url in [
            (client(ssl_context=trusting), server.url_at("127.0.0.1")),
            (client(), server.url_at("localhost")),
        ]:
            with pytest.raises(ssl.SSLCertVerificationError):
                await posts.post(url, b"{}", HEADERS)
            await posts.aclose()
        await asyncio.sleep(0)
    assert len(server.requests) == 2  # nothing was sent over an unverified connection
