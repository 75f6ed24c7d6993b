"""An outbound connection's stream that answers httpcore's reuse check without a syscall storm.

Before it reuses a pooled keep-alive connection, httpcore asks the stream whether its socket
is readable (`get_extra_info("is_readable")`: a socket with data waiting while idle has been
closed by the server). Through anyio, every such question rebuilt the socket's attribute
table, `getpeername()` system call included: ~20% of a webhook worker's CPU under a steady
stream of deliveries, in py-spy, when webhooks still went through httpx (bench/PROFILE.md,
"Seventh round"; they go through `posts.py` now, the EHR sync through this). `CheckedStream` keeps
the connection's socket from when it was made and answers from it; everything else goes to
the stream it wraps. The network backend hands these out (`ipt_core/net/destinations.py`).

It also holds what httpcore writes until it reads: httpcore writes a request's head and its
body apart, two `send`s and two TCP segments for every request; held until the read of the
answer, they leave as one (bench/PROFILE.md, "Twelfth round"). 64 KiB or more held leaves
at once, so a large body streams as before.
"""

from __future__ import annotations

import select
import socket
import ssl

import httpcore

__all__ = ["CheckedStream"]

_HOLD_AT_MOST = 64 * 1024


class CheckedStream(httpcore.AsyncNetworkStream):
    """`inner`, with `socket` and `is_readable` answered from the socket it was made on."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        """Wrap a connected stream (plain or TLS: either way over one TCP socket)."""
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")
        self._held: list[bytes] = []
        self._held_size = 0
        self._write_timeout: float | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        """Send what is held, then read up to `max_bytes` (httpcore's interface)."""
        await self._send_held()
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Hold `buffer` until the next read (or until 64 KiB are held), then send it all."""
        if not buffer:
            return
        self._held.append(buffer)
        self._held_size += len(buffer)
        self._write_timeout = timeout
        if self._held_size >= _HOLD_AT_MOST:
            await self._send_held()

    async def aclose(self) -> None:
        """Send what is held (a last frame), then close the connection."""
        try:
            await self._send_held()
        except (httpcore.NetworkError, httpcore.TimeoutException, OSError):
            pass  # closing anyway: the peer is gone or slow
        finally:
            await self._inner.aclose()

    async def _send_held(self) -> None:
        if self._held:
            held = b"".join(self._held)
            self._held.clear()
            self._held_size = 0
            await self._inner.write(held, self._write_timeout)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        """Upgrade to TLS; the TLS stream is wrapped the same way."""
        await self._send_held()
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
