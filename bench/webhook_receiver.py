"""A webhook receiver for the event benchmarks: uvicorn in its own process, so its CPU is not
charged to the process under test.

For every delivery it records, by event id (the `webhook-id` a receiver dedupes by), the
time of the first receipt, how many times it came, the event's `time` (the write's instant,
stamped in the write's transaction, before its commit) and the id of the resource it names.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import orjson
import uvicorn

__all__ = ["Receipt", "WebhookReceiver"]


@dataclass(frozen=True)
class Receipt:
    """One event as received: first receipt (epoch seconds), count, event time, resource id."""

    first_at: float
    count: int
    event_time: str
    resource_id: str | None


class WebhookReceiver:
    """The receiver process and the pipe that asks it what it received."""

    def __init__(self) -> None:
        """Start the process and wait until it listens."""
        self._control, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_receive, args=(child,), daemon=True)
        self._process.start()
        self.port: int = self._control.recv()
        self.url = f"http://127.0.0.1:{self.port}/hooks"

    def received(self) -> dict[str, Receipt]:
        """Everything received so far, by event id."""
        self._control.send("report")
        raw: dict[str, list[Any]] = self._control.recv()
        return {key: Receipt(*value) for key, value in raw.items()}

    async def wait_for(self, ids: set[str], *, timeout_s: float) -> dict[str, Receipt]:
        """Poll until every event id in `ids` was received; return everything received."""
        deadline = time.monotonic() + timeout_s
        while True:
            received = await asyncio.to_thread(self.received)
            if ids <= received.keys():
                return received
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ids - received.keys())} events never arrived")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        """Stop the server and its process."""
        self._control.send("stop")
        self._process.join(timeout=10)


def _receive(control: Connection) -> None:
    """The receiver process's body: serve until told to stop."""
    received: dict[str, list[Any]] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender went away mid-request (stopped at the end of a run)
            body += message.get("body", b"")
            more = message.get("more_body", False)
        at = time.time()
        envelope: dict[str, Any] = orjson.loads(body)
        seen = received.get(envelope["id"])
        if seen is None:
            data = envelope.get("data") or {}
            received[envelope["id"]] = [at, 1, envelope["time"], data.get("id")]
        else:
            seen[1] += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
            access_log=False, backlog=1024,
        )
    )  # fmt: skip

    def answer() -> None:
        while not server.started:
            time.sleep(0.01)
        control.send(port)
        while control.recv() != "stop":
            # Copies made here, in this thread, while the server thread may add entries:
            # `dict.copy` runs in C under the GIL, so it cannot see the dict change size
            # (iterating `received` itself, even through `list(...)`, can).
            control.send({key: list(value) for key, value in received.copy().items()})
        server.should_exit = True

    threading.Thread(target=answer, daemon=True).start()
    server.run()
