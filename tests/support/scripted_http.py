"""A TCP server on loopback that answers each HTTP request with the bytes a script gives.

For answers a real server does not give on demand: cut short, interim, close-delimited,
garbage, or none at all. It runs on the test's event loop and records every request and
every connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Reply", "Request", "ScriptedServer"]


@dataclass(frozen=True)
class Request:
    """One request as it arrived: its head (request line and headers), headers and body."""

    head: bytes
    headers: dict[str, str]
    body: bytes
    connection: int  # which connection (1, 2, ...) it came on


@dataclass(frozen=True)
class Reply:
    """What to send back (`None`: nothing), and whether to close the connection after it."""

    data: bytes | None = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
    close: bool = False


@dataclass
class ScriptedServer:
    """Listens on 127.0.0.1; `script(request, n)` answers the n-th request (1, 2, ...)."""

    script: Callable[[Request, int], Reply] = lambda request, n: Reply()
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    port: int = 0  # once listening
    secret: str = ""  # a webhook endpoint's, once subscribed (not checked here)
    _server: asyncio.Server | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._open:  # a connection left open would keep wait_closed waiting
            writer.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        """Its URL on 127.0.0.1."""
        return self.url_at()

    def url_at(self, host: str = "127.0.0.1", path: str = "/hooks") -> str:
        """Its URL with `host` (which must resolve to 127.0.0.1) and `path`."""
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://{host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        self._open.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # the client closed the connection
                headers = dict(
                    line.decode("latin-1").lower().split(": ", 1)
                    for line in head.split(b"\r\n")[1:]
                    if line
                )
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(head, headers, body, connection)
                self.requests.append(request)
                reply = self.script(request, len(self.requests))
                if reply.data is not None:
                    writer.write(reply.data)
                    await writer.drain()
                if reply.close:
                    return
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            self._open.discard(writer)
            writer.close()
