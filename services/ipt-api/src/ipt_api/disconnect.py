"""Stop working for a client that has gone: cancel the request when its connection closes.

Neither uvicorn nor Starlette cancels a request's task when the client disconnects, so an
expensive search would run to its end (or to the statement timeout) for nobody. The edge
(ipt_api/edge.py) runs every request through `serve_until_disconnect`, which watches the
connection once the request body has been read (and the request has run for 20 ms) and
cancels the request's task on `http.disconnect`; cancelling an asyncpg query sends
PostgreSQL a cancel request, so the statement stops too (README, "Input limits").

The exchange is also where the edge meets the request's messages, so the body is counted
against the limit in its `receive` and the response's start is seen (`on_start`: status,
security headers) in its `send`: one wrapper each way instead of one per concern.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipt_api.gate import body_limit_exceeded

__all__ = ["Exchange", "serve_until_disconnect"]

_DISCONNECT: Message = {"type": "http.disconnect"}
_WATCH_AFTER_S = 0.02  # a request still running after this long is watched


async def serve_until_disconnect(app: ASGIApp, scope: Scope, exchange: Exchange) -> None:
    """Run the request; cancel it if the client leaves before the response is complete."""
    task = asyncio.current_task()
    assert task is not None
    # The watcher is a task of its own, started only once the request has run for a while:
    # most requests are done sooner, and a task per request (created, then cancelled) was a
    # cost of every one (bench/PROFILE.md, finding 1). A client gone before then is seen as
    # soon as the watcher starts.
    timer = asyncio.get_running_loop().call_later(_WATCH_AFTER_S, exchange.start_watching, task)
    try:
        await app(scope, exchange.receive, exchange.send)
    except asyncio.CancelledError:
        if not exchange.cancelled or task.uncancel() > 0:
            raise  # cancelled from outside (shutdown): not ours to swallow
    finally:
        timer.cancel()
        watcher = exchange.watcher
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


class Exchange:
    """One request's messages: the body goes to the app, then the watcher owns `receive`.

    Reading more than `max_body_bytes` of body fails (413); `on_start` sees the response's
    `http.response.start` message before it is sent.
    """

    def __init__(
        self,
        receive: Receive,
        send: Send,
        *,
        has_body: bool,
        max_body_bytes: int,
        on_start: Callable[[Message], None],
    ) -> None:
        """The exchange of the server's `receive` and `send`."""
        self._receive = receive
        self._send = send
        self._on_start = on_start
        self._limit = self._body_left = max_body_bytes  # counted down as the body comes in
        self.body_read = asyncio.Event()  # set: the app has the whole body
        self.disconnected = asyncio.Event()
        self.complete = False
        self.cancelled = False
        self.watcher: asyncio.Task[None] | None = None
        self._empty: Message | None = None
        if not has_body:
            # The app gets its empty body from here; the server's copy goes to the watcher.
            self._empty = {"type": "http.request", "body": b"", "more_body": False}
            self.body_read.set()

    async def receive(self) -> Message:
        if self._empty is not None:
            message, self._empty = self._empty, None
            return message
        if self.body_read.is_set():
            await self.disconnected.wait()  # the watcher reads the connection from now on
            return _DISCONNECT
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected.set()
            self.body_read.set()
            return message
        self._body_left -= len(message.get("body", b""))
        if self._body_left < 0:
            raise body_limit_exceeded(self._limit)
        if not message.get("more_body", False):
            self.body_read.set()
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._on_start(message)
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete = True
        await self._send(message)

    def start_watching(self, task: asyncio.Task[object]) -> None:
        self.watcher = asyncio.get_running_loop().create_task(self.watch(task))

    async def watch(self, task: asyncio.Task[object]) -> None:
        await self.body_read.wait()
        if not self.disconnected.is_set():
            while (await self._receive())["type"] != "http.disconnect":
                pass
            self.disconnected.set()
        if not self.complete:
            self.cancelled = True
            task.cancel()
