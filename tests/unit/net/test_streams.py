"""Guarded connections, plain and TLS, are reused while the server keeps them open, and only
then (`ipt_core/net/streams.py` answers httpcore's readability check from the socket); what
httpcore writes leaves in one write when it next reads."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import httpx
import pytest
import trustme

from ipt_core.net import DestinationPolicy, GuardedTransport
from ipt_core.net.streams import CheckedStream

LOOPBACK = DestinationPolicy.parse(["127.0.0.0/8"])


class _KeepAliveServer(ThreadingHTTPServer):
    """HTTP/1.1 on loopback: answers 204, keeps connections open unless told to close them;
    over TLS when given a server context."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _handler(self))
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "http" if tls is None else "https"
        self.connections = 0
        self.close_after_answer = False
        self.closed = threading.Semaphore(0)  # released as each connection is closed

    def shutdown_request(self, request: object) -> None:
        super().shutdown_request(request)  # type: ignore[arg-type]
        self.closed.release()


def _handler(server: _KeepAliveServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def setup(self) -> None:
            server.connections += 1
            super().setup()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()
            # Closed after answering, with no `Connection: close` said: the client finds out
            # only from the socket, when it next looks at the idle connection.
            self.close_connection = server.close_after_answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


_CA = trustme.CA()  # a throwaway certificate authority, trusted by the client only


@pytest.fixture(params=["http", "https"])
def server(request: pytest.FixtureRequest) -> Iterator[_KeepAliveServer]:
    tls = None
    if request.param == "https":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _CA.issue_cert("127.0.0.1").configure_cert(tls)
    server = _KeepAliveServer(tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def _post_three_times(server: _KeepAliveServer) -> list[int]:
    url = f"{server.scheme}://127.0.0.1:{server.server_address[1]}/hook"
    trusted = ssl.create_default_context()
    _CA.configure_trust(trusted)
    transport = GuardedTransport(LOOPBACK, ssl_context=trusted)
    statuses = []
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            statuses.append((await client.post(url, content=b"{}")).status_code)
            if server.close_after_answer:  # the next request comes after the close, not during
                assert await asyncio.to_thread(server.closed.acquire, timeout=5)
    return statuses


async def test_an_open_connection_is_reused(server: _KeepAliveServer) -> None:
    assert await _post_three_times(server) == [204, 204, 204]
    assert server.connections == 1


async def test_a_connection_the_server_closed_is_not_reused(server: _KeepAliveServer) -> None:
    # Reused, the closed connection would fail the next request instead of a new one serving it.
    server.close_after_answer = True
    assert await _post_three_times(server) == [204, 204, 204]
    assert server.connections == 3


class _Recorder(httpcore.AsyncNetworkStream):
    """The network under a `CheckedStream`: records each write that reaches it, and the order
    of writes, reads and the close (a real server cannot tell one segment from two for sure)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        self.calls.append(("read", b""))
        return b"HTTP/1.1 204 No Content\r\n\r\n"

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self.calls.append(("write", buffer))

    async def aclose(self) -> None:
        self.calls.append(("close", b""))

    def get_extra_info(self, info: str) -> object:
        return None


async def test_a_request_head_and_body_leave_in_one_write_before_the_read() -> None:
    network = _Recorder()
    stream = CheckedStream(network)
    await stream.write(b"POST /hook HTTP/1.1\r\nContent-Length: 2\r\n\r\n")
    await stream.write(b"{}")
    await stream.write(b"")  # h11's end of a fixed-length body
    assert network.calls == []
    await stream.read(65536)
    assert network.calls == [
        ("write", b"POST /hook HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
        ("read", b""),
    ]


async def test_a_large_body_is_sent_as_it_comes_and_a_close_sends_what_is_held() -> None:
    network = _Recorder()
    stream = CheckedStream(network)
    await stream.write(b"x" * 70_000)
    assert network.calls == [("write", b"x" * 70_000)]
    await stream.write(b"last")
    await stream.aclose()
    assert network.calls[1:] == [("write", b"last"), ("close", b"")]
