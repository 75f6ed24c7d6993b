"""The API's uvicorn protocol sends each response in one write, and streams still stream.

A real uvicorn server on a loopback port; beneath the protocol's own transport wrapper, a
recording layer counts the writes that reach the socket's transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ipt_api.http_protocol import CoalescingHttpToolsProtocol
from tests.support.network import free_port

pytestmark = pytest.mark.anyio

_WRITES: list[bytes] = []


class _Recording:
    """The socket's transport, recording every write that reaches it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        _WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _RecordedCoalescing(CoalescingHttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Recording(transport))  # type: ignore[arg-type]


class _RecordedPlain(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Recording(transport))  # type: ignore[arg-type]


_second_part = asyncio.Event()


async def _json(_: Request) -> Response:
    return JSONResponse({"resourceType": "Patient", "id": "p1"})


async def _stream(_: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        yield b"first\n"
        await _second_part.wait()  # the client must have read the first part by now
        yield b"second\n"

    return StreamingResponse(parts(), media_type="application/x-ndjson")


async def _large(_: Request) -> Response:
    return Response(b"x" * (256 * 1024), media_type="application/octet-stream")


_APP = Starlette(
    routes=[
        Route("/json", _json, methods=["GET", "HEAD"]),
        Route("/stream", _stream),
        Route("/large", _large),
    ]
)


@asynccontextmanager
async def _served(protocol: type[asyncio.Protocol]) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(_APP, host="127.0.0.1", port=port, http=protocol, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(autouse=True)
def _fresh() -> None:
    _WRITES.clear()
    _second_part.clear()


async def test_each_response_leaves_in_one_write_on_a_kept_alive_connection() -> None:
    async with _served(_RecordedCoalescing) as root, httpx.AsyncClient(base_url=root) as client:
        for _ in range(3):
            answer = await client.get("/json")
            assert answer.json() == {"resourceType": "Patient", "id": "p1"}
        head = await client.head("/json")
        assert head.status_code == 200
        assert head.content == b""
    assert len(_WRITES) == 4
    assert all(w.startswith(b"HTTP/1.1 200 OK\r\n") for w in _WRITES)
    assert all(w.endswith(b'{"resourceType":"Patient","id":"p1"}') for w in _WRITES[:3])


async def test_uvicorns_own_protocol_writes_head_and_body_apart() -> None:
    # The control: what the wrapper saves (and proof the recording sees every write).
    async with _served(_RecordedPlain) as root, httpx.AsyncClient(base_url=root) as client:
        assert (await client.get("/json")).status_code == 200
    assert len(_WRITES) == 2
    assert _WRITES[0].endswith(b"\r\n\r\n")
    assert _WRITES[1].startswith(b'{"resourceType"')


async def test_a_streams_parts_leave_as_they_are_made() -> None:
    async with (
        _served(_RecordedCoalescing) as root,
        httpx.AsyncClient(base_url=root) as client,
        client.stream("GET", "/stream") as answer,
    ):
        lines = answer.aiter_lines()
        first = await asyncio.wait_for(anext(lines), timeout=5)  # not held back
        _second_part.set()
        rest = [line async for line in lines]
    assert (first, rest) == ("first", ["second"])


async def test_a_large_body_is_written_at_once_and_arrives_whole() -> None:
    async with _served(_RecordedCoalescing) as root, httpx.AsyncClient(base_url=root) as client:
        answer = await client.get("/large")
    assert answer.content == b"x" * (256 * 1024)
    assert sum(len(w) for w in _WRITES) > 256 * 1024


async def test_a_connection_closed_by_the_client_mid_response_is_not_written_to() -> None:
    async with _served(_RecordedCoalescing) as root:
        port = int(root.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(4096), 5)).startswith(b"HTTP/1.1 200 OK")
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.1)  # the server sees the connection closed
        written = len(_WRITES)
        _second_part.set()
        await asyncio.sleep(0.1)
        assert len(_WRITES) == written
        async with httpx.AsyncClient(base_url=root) as client:  # and still serves others
            assert (await client.get("/json")).status_code == 200
