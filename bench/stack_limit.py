"""The stack limit: the least an ASGI server on uvicorn + asyncpg can do to answer a FHIR read.

`GET /fhir/{type}/{id}` fetches the stored row from the store's `resource` table with one
prepared statement and returns its bytes with the headers a FHIR read carries (ETag,
Last-Modified). No framework, no routing table, no middleware: whatever this serves per
second is the ceiling for the real service on the same machine, database and server.

Run: `python -m bench.stack_limit --database-url postgresql://… --port 8001`.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import format_datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; this module only
import uvicorn

__all__ = ["StackLimit", "main"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_READ = (
    "SELECT version_id, last_updated, content FROM resource "
    "WHERE resource_type = $1 AND id = $2 AND NOT deleted"
)
_FHIR_JSON = b"application/fhir+json; charset=utf-8"


class StackLimit:
    """A bare ASGI app serving stored resources by type and id."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        parts = scope["path"].split("/")
        if len(parts) != 4 or parts[1] != "fhir" or self._pool is None:
            await _answer(send, 404, b"", [])
            return
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_READ, parts[2], parts[3])
        if row is None:
            await _answer(send, 404, b"", [])
            return
        headers = [
            (b"etag", f'W/"{row["version_id"]}"'.encode()),
            (b"last-modified", format_datetime(row["last_updated"], usegmt=True).encode()),
            (b"content-type", _FHIR_JSON),
        ]
        await _answer(send, 200, row["content"].encode(), headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._pool = await asyncpg.create_pool(self._dsn, min_size=10, max_size=10)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    await self._pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    """Serve the stack-limit app on loopback."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="postgresql://… of the store")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    dsn = args.database_url.replace("postgresql+asyncpg://", "postgresql://")
    app = StackLimit(dsn)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
