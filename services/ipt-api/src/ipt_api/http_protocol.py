"""uvicorn's httptools protocol, sending a response's head and body in one write.

uvicorn writes a response's status line and headers when the app starts the response, and
its body when the app sends it: two `send` system calls and two TCP segments for every
small answer, and two for the client to read. Here uvicorn gets a transport that holds
writes back until the event loop's next turn and then sends them as one. A response whose
head and body the app sends in one step (every answer of ours except streams) leaves in one
segment; a stream's parts still leave at each turn of the loop. One write less per request
was 9-13% more reads and searches per second on the 2-core bench machine (bench/PROFILE.md,
"Ninth round").
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol"]

# Held-back bytes are sent at once past this: the transport's flow control (pausing a
# producer whose client reads slowly) must still see a large stream as it is written.
_HOLD_AT_MOST = 64 * 1024


class _CoalescingTransport:
    """A transport whose writes within one turn of the event loop are sent as one."""

    __slots__ = ("_held", "_held_bytes", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0

    def write(self, data: bytes) -> None:
        """Hold `data` back until the loop's next turn (or send it all, when it is large)."""
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)
        self._held_bytes += len(data)
        if self._held_bytes >= _HOLD_AT_MOST:
            self.flush()

    def flush(self) -> None:
        """Send what is held back, in one write; drop it if the connection is closing."""
        if not self._held:
            return
        held = self._held
        self._held = []
        self._held_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        """Send what is held back, then close (as a transport sends its buffer first)."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, pause_reading, get_extra_info, abort…) as it is.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a transport that sends each response in one write.

    Pass it as uvicorn's `http` (`uvicorn.Config(app, http=CoalescingHttpToolsProtocol)`).
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Serve the connection on a coalescing view of `transport`."""
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
