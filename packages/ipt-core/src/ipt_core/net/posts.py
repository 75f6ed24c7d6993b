"""`PostClient`: POSTs over kept-alive HTTP/1.1 connections, only to allowed destinations.

Webhook delivery is the worker's hot loop: every event is one POST. Through httpx's transport
(httpcore's pool, anyio's streams and locks, h11) a POST cost 700-1,000 µs of the worker's CPU,
through aiohttp 170-230 µs, through this client 57-93 µs (measured alone: 8 concurrent
senders, 4,000 POSTs to a local receiver; docs/architecture.md, "Events, outbox and relay").
aiohttp would also need a private hook for the SSRF guard: it connects to an address literal
without asking its resolver. So webhooks go through this small client; the EHR sync, which
needs the rest of HTTP, keeps httpx (`guarded_client`).

What it does, and no more:
- POST only, the body in memory, a fresh `content-length`; no redirects, cookies, proxies or
  authentication from the URL: a signed event goes where it was addressed and nowhere else.
- Every connection is made to an address that passed the destination policy (resolved once,
  checked, connected to: `checked_addresses`), so DNS rebinding cannot reach an internal
  address. TLS verifies the certificate against the URL's host.
- The answer is parsed by httptools (llhttp, the parser of Node.js and uvicorn). Its status and
  `Retry-After` are kept; its body is read and dropped (beyond 1 MiB the connection is closed
  instead). Interim answers (`100 Continue`) are skipped.
- A connection is reused while the server keeps it alive and it has been idle for less than
  `_IDLE_S`. One that fails before any byte of its answer (the server closed it as it was
  reused) is replaced by a new connection once, within the attempt's deadline.
- One deadline covers the whole attempt: connecting, sending and the answer.

Errors: `DestinationRefused` (before connecting), `TimeoutError`, `OSError` (no connection, a
broken or invalid answer: `BrokenAnswer`), `ValueError` (a URL or header that cannot be sent;
the message never carries the value).
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import httptools
import httpx

from ipt_core.net.destinations import DestinationPolicy, checked_addresses

__all__ = ["Answer", "BrokenAnswer", "PostClient"]

_MAX_HEAD = 64 * 1024  # bytes of an answer before its headers end
_MAX_BODY = 1024 * 1024  # bytes of an answer's body read before the connection is closed
# Idle connections older than this are closed, not reused: below the idle timeouts of common
# servers (uvicorn 5 s, nginx 75 s), so a server rarely closes one just as it is reused.
_IDLE_S = 4.0
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110)
_VALUE = re.compile(r"[\t\x20-\x7e]*")  # a header value: visible ASCII, space and tab
_SET_HERE = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class Answer:
    """The final answer's status code and its `Retry-After` header (as sent, if any)."""

    status: int
    retry_after: str | None = None


class BrokenAnswer(ConnectionError):
    """The connection closed before a whole answer came, or the answer was not HTTP/1.1."""


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int


@dataclass(frozen=True)
class _Target:
    origin: _Origin
    head: bytes  # the request line and `host` header


class PostClient:
    """Sends POSTs; keeps up to `keep_idle` idle connections per origin for the next ones."""

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        timeout_s: float,
        keep_idle: int = 8,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Connect only where `policy` allows; give up an attempt after `timeout_s`; verify
        TLS with `ssl_context` (default: the CAs httpx trusts, loaded once)."""
        self._policy = policy
        self._timeout_s = timeout_s
        self._keep_idle = keep_idle
        self._ssl = ssl_context or httpx.create_ssl_context()
        self._idle: dict[_Origin, list[_Connection]] = {}

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """POST `body` with `headers` to `url`; return the final answer (whatever its status)."""
        target = _target(url)
        request = b"".join(
            (target.head, b"content-length: %d\r\n" % len(body), _header_lines(headers), body)
        )
        async with asyncio.timeout(self._timeout_s):
            connection = self._take_idle(target.origin)
            if connection is not None:
                try:
                    return await self._exchange(target.origin, connection, request)
                except BrokenAnswer:
                    if connection.answered:
                        raise  # the server did answer: not a connection it had let go
            connection = await self._connect(target.origin)
            return await self._exchange(target.origin, connection, request)

    async def aclose(self) -> None:
        """Close every idle connection."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        connections = self._idle.get(origin)
        while connections:
            connection = connections.pop()  # the most recently used: the least likely closed
            if connection.reusable and time.monotonic() - connection.idle_since < _IDLE_S:
                return connection
            connection.close()
        return None

    async def _exchange(self, origin: _Origin, connection: _Connection, request: bytes) -> Answer:
        try:
            answer = await connection.send(request)
        except BaseException:  # timed out, cancelled or broken: its state is unknown
            connection.close()
            raise
        idle = self._idle.setdefault(origin, [])
        if connection.reusable and len(idle) < self._keep_idle:
            connection.idle_since = time.monotonic()
            idle.append(connection)
        else:
            connection.close()
        return answer

    async def _connect(self, origin: _Origin) -> _Connection:
        """A connection to the first checked address of `origin` that accepts one."""
        addresses = await checked_addresses(self._policy, origin.host, origin.port)
        loop = asyncio.get_running_loop()
        tls = origin.scheme == "https"
        failure: OSError | None = None
        for address in addresses:
            try:
                _, connection = await loop.create_connection(
                    _Connection,
                    str(address),
                    origin.port,
                    ssl=self._ssl if tls else None,
                    server_hostname=origin.host if tls else None,
                )
                return connection
            except OSError as error:  # refused, unreachable, or TLS that does not verify
                failure = error
        assert failure is not None  # checked_addresses never returns an empty list
        raise failure


class _Connection(asyncio.Protocol):
    """One connection: sends one request at a time and parses its answer (httptools calls the
    `on_*` methods from `feed_data`)."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[Answer] | None = None
        self._status = 0  # of the answer whose headers are complete; 0 before
        self._retry_after: str | None = None
        self._framed = False  # the answer's body has a length (content-length or chunked)
        self._head_bytes = 0  # of the answer's headers (or all bytes, until they are complete)
        self._header_bytes = 0  # of the headers parsed so far
        self._body_bytes = 0
        self.answered = False  # some byte of the current answer arrived
        self.reusable = True
        self.idle_since = 0.0

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        """Write `request`; the future resolves with its final answer."""
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._status, self._retry_after, self._framed = 0, None, False
        self._head_bytes = self._header_bytes = self._body_bytes = 0
        self.answered = False
        self._transport.write(request)
        return self._answer

    def close(self) -> None:
        """Close the connection (it is not reused)."""
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    # asyncio's protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted again
            return
        self.answered = True
        if not self._status:
            self._head_bytes += len(data)  # an upper bound until the headers are complete
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:  # an upgrade (never asked for) included
            self._fail("the answer is not HTTP/1.1")
            return
        if self._head_bytes > _MAX_HEAD:  # counted until its headers are complete
            self._fail("the answer's headers are too long")

    def eof_received(self) -> bool:
        self.reusable = False
        return False  # close our side too; connection_lost settles the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self._answer is None or self._answer.done():
            return
        if self._status and not self._framed:  # a body that ends with the connection
            self._answer.set_result(Answer(self._status, self._retry_after))
        else:
            self._answer.set_exception(BrokenAnswer("the connection closed before the answer"))

    # httptools' parser callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        name = name.lower()
        if name == b"retry-after":
            self._retry_after = value.decode("latin-1")
        elif name in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._head_bytes = self._header_bytes  # now exact (but for the request line)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > _MAX_BODY and self._answer is not None:
            if not self._answer.done():
                self._answer.set_result(Answer(self._status, self._retry_after))
            self.close()

    def on_message_complete(self) -> None:
        if self._status < 200:  # an interim answer: the final one follows
            self._status, self._retry_after, self._framed = 0, None, False
            self._head_bytes = self._header_bytes = 0
            return
        if not self._parser.should_keep_alive():
            self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(Answer(self._status, self._retry_after))

    def _fail(self, reason: str) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(BrokenAnswer(reason))
        self.close()


@functools.lru_cache(maxsize=1024)
def _target(url: str) -> _Target:
    """Where `url` points and the request line and `host` header for it (parsed once)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ValueError("the URL is not valid") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("the URL is not an http or https URL with a host")
    default_port = 443 if parsed.scheme == "https" else 80
    port = parsed.port or default_port
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    authority = host if port == default_port else f"{host}:{port}"
    head = b"POST %s HTTP/1.1\r\nhost: %s\r\n" % (parsed.raw_path, authority.encode("ascii"))
    return _Target(_Origin(parsed.scheme, parsed.host, port), head)


def _header_lines(headers: Mapping[str, str]) -> bytes:
    """The header lines and the blank line that ends them; ValueError for a header that
    could not be sent as given (the value is not quoted: it may be a secret)."""
    lines = []
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or name.lower() in _SET_HERE:
            raise ValueError(f"header {name[:40]!r} cannot be sent")
        if not _VALUE.fullmatch(value):
            raise ValueError(f"the value of header {name!r} cannot be sent")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("ascii")
