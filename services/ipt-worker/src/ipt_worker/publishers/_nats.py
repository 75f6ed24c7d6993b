"""The NATS JetStream publisher: subject `ipt.events.<type>`, `Nats-Msg-Id` = event id.

JetStream drops a message whose `Nats-Msg-Id` it has seen within the stream's duplicate
window, so a batch the relay sends again after a crash does not duplicate events.
Messages of one connection reach the stream in the order they were sent, so the batch is
pipelined and its acknowledgements awaited together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.events import OutboxEvent

if TYPE_CHECKING:  # the client is imported when first used: a worker without NATS starts faster
    from nats.aio.client import Client
    from nats.js import JetStreamContext

__all__ = ["NatsPublisher"]

_log = logging.getLogger(__name__)


class NatsPublisher:
    """Publishes to a JetStream stream, creating the stream when it is missing."""

    name = "nats"

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        subject_prefix: str = "ipt.events",
        timeout_s: float = 5.0,
    ) -> None:
        """Connect lazily to `url` at the first batch (and again after a failure)."""
        self.url = url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.timeout_s = timeout_s
        self._client: Client | None = None
        self._jetstream: JetStreamContext | None = None

    async def publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
        """Send the batch and wait until JetStream acknowledged every message."""
        jetstream = await self._connected()
        try:
            acks = [await self._send(jetstream, event) for event in events]
            await asyncio.wait_for(asyncio.gather(*acks), timeout=self.timeout_s)
        except Exception:
            await self.close()  # start from a fresh connection next time
            raise

    async def close(self) -> None:
        """Close the connection, if any."""
        client, self._client, self._jetstream = self._client, None, None
        if client is not None and not client.is_closed:
            await client.close()

    def subject(self, event_type: str) -> str:
        """The subject of an event type, e.g. `ipt.events.ipt.course.phase.changed`."""
        return f"{self.subject_prefix}.{event_type}"

    async def _send(self, jetstream: JetStreamContext, event: OutboxEvent) -> Any:
        return await jetstream.publish_async(
            self.subject(event.type),
            orjson.dumps(event.envelope),
            stream=self.stream,
            headers=_headers(event),
        )

    async def _connected(self) -> JetStreamContext:
        if self._jetstream is not None and self._client is not None and self._client.is_connected:
            return self._jetstream
        await self.close()
        import nats

        self._client = await nats.connect(
            servers=[self.url],
            connect_timeout=max(1, int(self.timeout_s)),
            allow_reconnect=False,  # the relay retries the batch on a fresh connection
            error_cb=_log_error,
            name="ipt-relay",
        )
        self._jetstream = self._client.jetstream(timeout=self.timeout_s)
        await self._ensure_stream(self._jetstream)
        return self._jetstream

    async def _ensure_stream(self, jetstream: JetStreamContext) -> None:
        try:
            await jetstream.stream_info(self.stream)
        except _not_found():
            await jetstream.add_stream(name=self.stream, subjects=[f"{self.subject_prefix}.>"])
            _log.info("created JetStream stream %s", self.stream)


async def _log_error(error: Exception) -> None:
    _log.warning("NATS connection error: %s", type(error).__name__)


def _headers(event: OutboxEvent) -> dict[str, str]:
    # Nats-Msg-Id lets JetStream drop a re-published duplicate; traceparent continues the trace.
    headers = {"Nats-Msg-Id": event.id, "Content-Type": "application/cloudevents+json"}
    traceparent = event.envelope.get("traceparent")
    if traceparent:
        headers["traceparent"] = str(traceparent)
    return headers


def _not_found() -> type[Exception]:
    from nats.js.errors import NotFoundError

    return NotFoundError
