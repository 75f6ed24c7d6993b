"""Turning an endpoint off from the delivery loop, with the event that tells about it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.events._envelope import cloud_event
from ipt_core.events._outbox import append_sequenced
from ipt_core.events._types import ENDPOINT_DISABLED
from ipt_core.events.webhooks._repository import endpoints as repository

__all__ = ["disable_endpoint"]


async def disable_endpoint(
    conn: AsyncConnection, endpoint_id: str, reason: str, now: datetime
) -> bool:
    """Disable an enabled endpoint and append `ipt.webhook.endpoint.disabled`; False if off.

    Its pending deliveries stay queued: re-enabling it sends them, in order.
    """
    failures = await repository.disable(conn, endpoint_id, reason)
    if failures is None:
        return False
    key = f"WebhookEndpoint/{endpoint_id}"
    event = cloud_event(
        type_=ENDPOINT_DISABLED,
        subject=key,
        partition_key=key,
        sequence=0,  # numbered by `append_sequenced`, in this transaction
        time=now,
        data={"endpoint_id": endpoint_id, "reason": reason, "consecutive_failures": failures},
    )
    await append_sequenced(conn, [("WebhookEndpoint", event)], now)
    return True
