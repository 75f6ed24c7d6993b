"""Webhook deliveries: fan-out, the due heads of each course's queue, attempts, the log.

A delivery row is one (endpoint, event). Rows of one endpoint and partition key (course) are
sent strictly one after the other, oldest first: only the head of each such queue is ever
due, so a failing event holds back later events of its course and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "Attempt",
    "DeliveryRecord",
    "DueDelivery",
    "deliveries_of",
    "due_deliveries",
    "fan_out",
    "queue_replay",
    "record_failure",
    "record_success",
    "redeliver",
]

# Matches outbox rows `o` to the endpoints `e` that want them (types, therapist, organization).
_FAN_OUT: Final = (
    "INSERT INTO webhook_delivery (endpoint_id, event_seq, event_id, event_type, "
    "partition_key, status, attempts, next_attempt_at, created_at) "
    "SELECT e.id, o.seq, o.id, o.type, o.aggregateid, 'pending', 0, :now, :now "
    "FROM outbox o JOIN webhook_endpoint e "
    "ON cardinality(e.event_types) = 0 OR o.type = ANY(e.event_types) "
    "LEFT JOIN ipt_course c ON c.id = o.aggregateid "
    "WHERE (e.therapist_ref IS NULL OR e.therapist_ref = c.therapist_ref) "
    "AND (e.organization_ref IS NULL OR e.organization_ref = c.organization_ref) AND "
)
_DUE_SELECT: Final = (
    "SELECT d.id, d.endpoint_id, d.partition_key, d.attempts, d.next_attempt_at, e.url, "
    "e.secret, o.payload FROM webhook_delivery d "
    "JOIN webhook_endpoint e ON e.id = d.endpoint_id JOIN outbox o ON o.seq = d.event_seq"
)
_RECORD_COLUMNS: Final = (
    "id, endpoint_id, event_id, event_type, partition_key, status, attempts, next_attempt_at, "
    "last_attempt_at, last_status_code, last_error, created_at, delivered_at"
)


@dataclass(frozen=True)
class DueDelivery:
    """A delivery to attempt now, with what the attempt needs."""

    id: int
    endpoint_id: str
    partition_key: str
    url: str
    secret: str
    attempts: int  # attempts made before this one
    envelope: dict[str, Any]


@dataclass(frozen=True)
class Attempt:
    """A failed attempt, and when to try again."""

    delivery_id: int
    endpoint_id: str
    status_code: int | None  # None: no response
    error: str  # timeout | connect | request | http-<status>
    next_attempt_at: datetime


@dataclass(frozen=True)
class DeliveryRecord:
    """One row of an endpoint's delivery log."""

    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    partition_key: str
    status: str  # pending | delivered
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


async def fan_out(conn: AsyncConnection, seqs: Sequence[int], now: datetime) -> int:
    """Queue the outbox events `seqs` for every enabled endpoint that wants them."""
    inserted = await conn.execute(
        text(_FAN_OUT + "e.enabled AND o.seq = ANY(:seqs) ORDER BY o.seq, e.id"),
        {"seqs": list(seqs), "now": now},
    )
    return int(inserted.rowcount)


async def queue_replay(
    conn: AsyncConnection, endpoint_id: str, since: datetime, until: datetime, now: datetime
) -> int:
    """Queue again, for one endpoint, every stored event created in [since, until)."""
    inserted = await conn.execute(
        text(
            _FAN_OUT + "e.id = :endpoint AND o.created_at >= :since AND o.created_at < :until "
            "ORDER BY o.seq"
        ),
        {"endpoint": endpoint_id, "since": since, "until": until, "now": now},
    )
    return int(inserted.rowcount)


async def due_deliveries(conn: AsyncConnection, now: datetime, *, limit: int) -> list[DueDelivery]:
    """The oldest due heads of enabled endpoints' queues (one per endpoint and course)."""
    rows = await conn.execute(
        text(
            f"{_DUE_SELECT} WHERE d.status = 'pending' AND d.next_attempt_at <= :now "
            "AND e.enabled AND NOT EXISTS (SELECT 1 FROM webhook_delivery p "
            "WHERE p.endpoint_id = d.endpoint_id AND p.partition_key = d.partition_key "
            "AND p.status = 'pending' AND p.id < d.id) ORDER BY d.id LIMIT :limit"
        ),
        {"now": now, "limit": limit},
    )
    return [_due(row) for row in rows]


def _due(row: Any) -> DueDelivery:
    return DueDelivery(
        row.id, row.endpoint_id, row.partition_key, row.url, row.secret, row.attempts, row.payload
    )


async def record_success(
    conn: AsyncConnection, delivery: DueDelivery, status_code: int, now: datetime
) -> DueDelivery | None:
    """Mark a delivery delivered; return the next due delivery of its queue, if any.

    One statement, so it needs no transaction of its own. The endpoint's failure count is
    written only when it is not zero: every success locking the endpoint's row would make
    concurrent deliveries to one endpoint queue on it.
    """
    row = (
        await conn.execute(
            text(
                "WITH delivered AS (UPDATE webhook_delivery SET attempts = attempts + 1, "
                "last_attempt_at = :now, last_status_code = :code, last_error = NULL, "
                "status = 'delivered', delivered_at = :now WHERE id = :id), "
                "reset AS (UPDATE webhook_endpoint SET consecutive_failures = 0 "
                "WHERE id = :endpoint AND consecutive_failures <> 0) "
                # The statement still sees the delivery as pending: skip it by id.
                f"SELECT * FROM ({_DUE_SELECT} WHERE d.endpoint_id = :endpoint "
                "AND d.partition_key = :key AND d.status = 'pending' AND d.id <> :id "
                "AND e.enabled ORDER BY d.id LIMIT 1) head WHERE head.next_attempt_at <= :now"
            ),
            {
                "id": delivery.id,
                "endpoint": delivery.endpoint_id,
                "key": delivery.partition_key,
                "code": status_code,
                "now": now,
            },
        )
    ).first()
    return None if row is None else _due(row)


async def record_failure(conn: AsyncConnection, attempt: Attempt, now: datetime) -> int:
    """Store a failed attempt and when to retry; return the endpoint's consecutive failures."""
    failures = await conn.scalar(
        text(
            "WITH failed AS (UPDATE webhook_delivery SET attempts = attempts + 1, "
            "last_attempt_at = :now, last_status_code = :code, last_error = :error, "
            "next_attempt_at = :next WHERE id = :id) "
            "UPDATE webhook_endpoint SET consecutive_failures = consecutive_failures + 1 "
            "WHERE id = :endpoint RETURNING consecutive_failures"
        ),
        {
            "id": attempt.delivery_id,
            "endpoint": attempt.endpoint_id,
            "now": now,
            "code": attempt.status_code,
            "error": attempt.error,
            "next": attempt.next_attempt_at,
        },
    )
    return int(failures or 0)


async def deliveries_of(
    conn: AsyncConnection, endpoint_id: str, *, before: int | None, limit: int
) -> list[DeliveryRecord]:
    """An endpoint's deliveries, newest first, older than delivery `before` when given."""
    rows = await conn.execute(
        text(
            f"SELECT {_RECORD_COLUMNS} FROM webhook_delivery WHERE endpoint_id = :endpoint "
            "AND (CAST(:before AS bigint) IS NULL OR id < :before) ORDER BY id DESC LIMIT :limit"
        ),
        {"endpoint": endpoint_id, "before": before, "limit": limit},
    )
    return [DeliveryRecord(**row._mapping) for row in rows]


async def redeliver(
    conn: AsyncConnection, endpoint_id: str, delivery_id: int, now: datetime
) -> DeliveryRecord | None:
    """Queue the event of a past delivery once more (same event id); None if not possible.

    The copy goes to the back of its course's queue, after what is pending for that course.
    """
    row = (
        await conn.execute(
            text(
                "INSERT INTO webhook_delivery (endpoint_id, event_seq, event_id, event_type, "
                "partition_key, status, attempts, next_attempt_at, created_at) "
                "SELECT d.endpoint_id, d.event_seq, d.event_id, d.event_type, d.partition_key, "
                "'pending', 0, :now, :now FROM webhook_delivery d WHERE d.id = :id "
                "AND d.endpoint_id = :endpoint AND EXISTS "
                "(SELECT 1 FROM outbox o WHERE o.seq = d.event_seq) "
                f"RETURNING {_RECORD_COLUMNS}"
            ),
            {"id": delivery_id, "endpoint": endpoint_id, "now": now},
        )
    ).first()
    return None if row is None else DeliveryRecord(**row._mapping)
