"""An outbound connection's stream that answers httpcore's reuse check without a syscall storm.

Before it reuses a pooled keep-alive connection, httpcore asks the stream whether its socket
is readable (`get_extra_info("is_readable")`: a socket with data waiting while idle has been
closed by the server). Through anyio, every such question rebuilt the socket's attribute
table, `getpeername()` system call included: ~20% of a webhook worker's CPU under a steady
stream of deliveries, in py-spy (bench/PROFILE.md, "Seventh round"). `CheckedStream` keeps
the connection's socket from when it was made and answers from it; everything else goes to
the stream it wraps. The network backend hands these out (`ipt_core/net/destinations.py`).
"""

from __future__ import annotations

import select
import socket
import ssl

import httpcore

__all__ = ["CheckedStream"]


class CheckedStream(httpcore.AsyncNetworkStream):
    """`inner`, with `socket` and `is_readable` answered from the socket it was made on."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        """Wrap a connected stream (plain or TLS: either way over one TCP socket)."""
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        """Read up to `max_bytes` (httpcore's interface, as the timeout argument)."""
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Write all of `buffer`."""
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        """Close the connection."""
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        """Upgrade to TLS; the TLS stream is wrapped the same way."""
        return CheckedStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        """The socket, and whether it is readable, from the socket; the rest from `inner`."""
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket | None) -> bool:
    """Whether `sock` has data (or its end) waiting; a socket without a descriptor counts as
    readable, so the connection is dropped rather than reused (as httpcore decides)."""
    descriptor = -1 if sock is None else sock.fileno()
    if descriptor < 0:
        return True
    if not hasattr(select, "poll"):  # Windows
        ready, _, _ = select.select([descriptor], [], [], 0)
        return bool(ready)
    poll = select.poll()
    poll.register(descriptor, select.POLLIN)
    return bool(poll.poll(0))
