"""SQL of webhook endpoints (subscriptions): store, list, enable, disable, delete, secrets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import is_pending, webhook_delivery, webhook_endpoint
from ipt_core.events.webhooks._model import Endpoint
from ipt_core.events.webhooks._repository import queue_table

__all__ = [
    "delete_endpoint",
    "disable",
    "endpoint",
    "endpoints",
    "insert_endpoint",
    "locked_secrets",
    "set_enabled",
    "set_secret",
]

_e: Final = webhook_endpoint.c
_LISTED: Final = (
    _e.id,
    _e.url,
    _e.event_types,
    _e.therapist_ref,
    _e.organization_ref,
    _e.enabled,
    _e.disabled_reason,
    _e.consecutive_failures,
    _e.created_at,
)


async def insert_endpoint(
    conn: AsyncConnection,
    *,
    endpoint_id: str,
    url: str,
    sealed_secret: str,
    event_types: Sequence[str],
    therapist_ref: str | None,
    organization_ref: str | None,
    now: datetime,
) -> Endpoint:
    """Store a new, enabled endpoint whose secret is already sealed."""
    row = (
        await conn.execute(
            insert(webhook_endpoint)
            .values(
                id=endpoint_id,
                url=url,
                secret=sealed_secret,
                event_types=sorted(set(event_types)),
                therapist_ref=therapist_ref,
                organization_ref=organization_ref,
                enabled=True,
                consecutive_failures=0,
                created_at=now,
            )
            .returning(*_LISTED)
        )
    ).one()
    return _endpoint(row)


async def endpoints(conn: AsyncConnection) -> list[Endpoint]:
    """Every endpoint, oldest first."""
    rows = await conn.execute(select(*_LISTED).order_by(_e.created_at, _e.id))
    return [_endpoint(row) for row in rows]


async def endpoint(conn: AsyncConnection, endpoint_id: str) -> Endpoint | None:
    """One endpoint, or None."""
    row = (await conn.execute(select(*_LISTED).where(_e.id == endpoint_id))).first()
    return None if row is None else _endpoint(row)


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str) -> bool:
    """Delete an endpoint and (by cascade) its deliveries; False when there was none."""
    deleted = await conn.execute(delete(webhook_endpoint).where(_e.id == endpoint_id))
    return bool(deleted.rowcount)


async def set_enabled(
    conn: AsyncConnection, endpoint_id: str, enabled: bool, now: datetime
) -> Endpoint | None:
    """Turn an endpoint on (its waiting deliveries become due now) or off; None if unknown.

    Its row first, then its queues': the order every statement that locks both keeps.
    """
    row = (
        await conn.execute(
            update(webhook_endpoint)
            .where(_e.id == endpoint_id)
            .values(
                enabled=enabled,
                consecutive_failures=0,
                disabled_reason=None if enabled else "manual",
            )
            .returning(*_LISTED)
        )
    ).first()
    if row is None:
        return None
    if enabled:
        waiting = webhook_delivery.c
        await conn.execute(
            update(webhook_delivery)
            .where(
                waiting.endpoint_id == endpoint_id,
                is_pending(waiting.status),
                waiting.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
        )
        await queue_table.make_due(conn, endpoint_id, now)
    else:
        await queue_table.park(conn, endpoint_id)
    return _endpoint(row)


async def disable(conn: AsyncConnection, endpoint_id: str, reason: str) -> int | None:
    """Disable an enabled endpoint; its consecutive failures, or None if it was already off."""
    failures = await conn.scalar(
        update(webhook_endpoint)
        .where(_e.id == endpoint_id, _e.enabled)
        .values(enabled=False, disabled_reason=reason)
        .returning(_e.consecutive_failures)
    )
    if failures is None:
        return None
    await queue_table.park(conn, endpoint_id)
    return int(failures)


async def locked_secrets(conn: AsyncConnection) -> list[tuple[str, str]]:
    """Every endpoint's (id, stored secret), rows locked until the transaction ends."""
    rows = await conn.execute(select(_e.id, _e.secret).order_by(_e.id).with_for_update())
    return [(row.id, row.secret) for row in rows]


async def set_secret(conn: AsyncConnection, endpoint_id: str, sealed_secret: str) -> None:
    """Replace an endpoint's stored secret."""
    await conn.execute(
        update(webhook_endpoint).where(_e.id == endpoint_id).values(secret=sealed_secret)
    )


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(**{**row._mapping, "event_types": tuple(row.event_types)})
