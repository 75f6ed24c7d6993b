"""SQL of webhook deliveries: fan-out, replay and redelivery, outcomes, the log, retention.

A delivery row is one (endpoint, event). Rows of one endpoint and partition key (course) are
sent strictly one after the other, oldest first (which queues a process sends: `queues`).
Every statement that queues or delivers rows keeps their queue's row in the same statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    CTE,
    BigInteger,
    DateTime,
    FromClause,
    Integer,
    Select,
    Text,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ipt_core.db.schema import ipt_course, is_pending, outbox, webhook_delivery, webhook_endpoint
from ipt_core.db.unnest import unnest_params
from ipt_core.events.webhooks._model import (
    Attempt,
    Delivered,
    DeliveryRecord,
)
from ipt_core.events.webhooks._repository.queue_table import advanced, enqueued

__all__ = [
    "DELIVERY_CHANNEL",
    "delete_delivered",
    "deliveries_of",
    "fanned_out",
    "queue_replay",
    "record_delivered",
    "record_failure",
    "redeliver",
]

# Notified when deliveries are queued: every worker's delivery loop listens.
DELIVERY_CHANNEL: Final = "ipt_webhook_delivery"
_d: Final = webhook_delivery.c
_e: Final = webhook_endpoint.c
_QUEUED_COLUMNS: Final = (
    "endpoint_id",
    "event_seq",
    "event_id",
    "event_type",
    "partition_key",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
_RECORD: Final = tuple(getattr(_d, name) for name in DeliveryRecord.__dataclass_fields__)


def _matching(stamp: ColumnElement[datetime], events: FromClause = outbox) -> Select[Any]:
    """Pending delivery rows for `events` (outbox rows, or a CTE of their `seq`, `id`, `type`
    and `aggregateid`) and the endpoints whose filters they pass."""
    course = ipt_course.c
    event = events.c
    return (
        select(
            _e.id,
            event.seq,
            event.id,
            event.type,
            event.aggregateid,
            literal("pending"),
            literal(0),
            stamp,
            stamp,
        )
        .select_from(
            events.join(
                webhook_endpoint,
                or_(func.cardinality(_e.event_types) == 0, event.type == any_(_e.event_types)),
            ).outerjoin(ipt_course, course.id == event.aggregateid)
        )
        .where(
            or_(_e.therapist_ref.is_(None), _e.therapist_ref == course.therapist_ref),
            or_(_e.organization_ref.is_(None), _e.organization_ref == course.organization_ref),
        )
    )


def fanned_out(events: CTE, now: ColumnElement[datetime]) -> tuple[tuple[CTE, ...], Any]:
    """Queue `events` (a CTE of outbox rows' `seq`, `id`, `type`, `aggregateid`) for every
    enabled endpoint that wants them, as part of another statement (the relay's batch).

    Returns the CTEs to add to that statement and a scalar column that, once evaluated,
    `NOTIFY`s the delivery loops if anything was queued (sent on commit).
    """
    queued = (
        insert(webhook_delivery)
        .from_select(
            _QUEUED_COLUMNS, _matching(now, events).where(_e.enabled).order_by(events.c.seq, _e.id)
        )
        .returning(_d.endpoint_id, _d.partition_key)
        .cte("queued")
    )
    woken = (
        select(case((func.count() > 0, func.pg_notify(DELIVERY_CHANNEL, ""))))
        .select_from(queued)
        .scalar_subquery()
    )
    return (queued, enqueued(queued, now)), woken


_NOTIFY: Final = select(func.pg_notify(DELIVERY_CHANNEL, ""))


async def _notified(conn: AsyncConnection, queued: int) -> int:
    """Wake the delivery loops (`NOTIFY`, sent on commit) when deliveries were queued."""
    if queued:
        await conn.execute(_NOTIFY)
    return queued


async def queue_replay(
    conn: AsyncConnection, endpoint_id: str, since: datetime, until: datetime, now: datetime
) -> int:
    """Queue again, for one endpoint, every stored event created in [since, until)."""
    stamp = _instant(now)
    rows = (
        _matching(stamp)
        .where(_e.id == endpoint_id, outbox.c.created_at >= since, outbox.c.created_at < until)
        .order_by(outbox.c.seq)
    )
    queued = (
        insert(webhook_delivery)
        .from_select(_QUEUED_COLUMNS, rows)
        .returning(_d.endpoint_id, _d.partition_key)
        .cte("queued")
    )
    counted = select(func.count()).select_from(queued).add_cte(enqueued(queued, stamp))
    return await _notified(conn, int(await conn.scalar(counted) or 0))


def _instant(now: datetime) -> ColumnElement[datetime]:
    return literal(now, DateTime(timezone=True))


_done = unnest_params("done", id=BigInteger, code=Integer, at=DateTime(timezone=True))
_marked = (
    update(webhook_delivery)
    .where(_d.id == _done.c.id, is_pending(_d.status))  # never counted off its queue twice
    .values(
        attempts=_d.attempts + 1,
        last_attempt_at=_done.c.at,
        last_status_code=_done.c.code,
        last_error=None,
        status="delivered",
        delivered_at=_done.c.at,
    )
    .returning(_d.endpoint_id, _d.partition_key, _done.c.at)
    .cte("marked")
)
# The endpoints first (the statement itself), then the deliveries and their queues (its
# CTEs): the order every statement that locks both takes them in (`queues`).
_RECORD_DELIVERED: Final = (
    update(webhook_endpoint)
    .where(
        _e.id == any_(bindparam("endpoints", type_=ARRAY(Text))),
        _e.consecutive_failures != 0,
    )
    .values(consecutive_failures=0)
    .add_cte(*advanced(_marked))
)


async def record_delivered(conn: AsyncConnection, delivered: Sequence[Delivered]) -> None:
    """Mark many deliveries delivered in one statement (it needs no transaction of its own).

    The endpoints' failure counts are written only where they are not zero: every success
    locking its endpoint's row would make concurrent deliveries to one endpoint queue on it.
    """
    if delivered:
        await conn.execute(
            _RECORD_DELIVERED,
            {
                "each_id": [item.delivery_id for item in delivered],
                "each_code": [item.status_code for item in delivered],
                "each_at": [item.at for item in delivered],
                "endpoints": sorted({item.endpoint_id for item in delivered}),
            },
        )


async def record_failure(conn: AsyncConnection, attempt: Attempt, now: datetime) -> int:
    """Store a failed attempt and when to retry; return the endpoint's consecutive failures."""
    failed = (
        update(webhook_delivery)
        .where(_d.id == attempt.delivery_id)
        .values(
            attempts=_d.attempts + 1,
            last_attempt_at=now,
            last_status_code=attempt.status_code,
            last_error=attempt.error,
            next_attempt_at=attempt.next_attempt_at,
        )
        .cte("failed")
    )
    failures = await conn.scalar(
        update(webhook_endpoint)
        .where(_e.id == attempt.endpoint_id)
        .values(consecutive_failures=_e.consecutive_failures + 1)
        .returning(_e.consecutive_failures)
        .add_cte(failed)
    )
    return int(failures or 0)


async def deliveries_of(
    conn: AsyncConnection, endpoint_id: str, *, before: int | None, limit: int
) -> list[DeliveryRecord]:
    """An endpoint's deliveries, newest first, older than delivery `before` when given."""
    query = select(*_RECORD).where(_d.endpoint_id == endpoint_id)
    if before is not None:
        query = query.where(_d.id < before)
    rows = await conn.execute(query.order_by(_d.id.desc()).limit(limit))
    return [DeliveryRecord(**row._mapping) for row in rows]


async def redeliver(
    conn: AsyncConnection, endpoint_id: str, delivery_id: int, now: datetime
) -> DeliveryRecord | None:
    """Queue the event of a past delivery once more (same event id); None if not possible.

    The copy goes to the back of its course's queue, after what is pending for that course.
    """
    past = webhook_delivery.alias("past")
    stamp = _instant(now)
    copy = select(
        past.c.endpoint_id,
        past.c.event_seq,
        past.c.event_id,
        past.c.event_type,
        past.c.partition_key,
        literal("pending"),
        literal(0),
        stamp,
        stamp,
    ).where(
        past.c.id == delivery_id,
        past.c.endpoint_id == endpoint_id,
        exists().where(outbox.c.seq == past.c.event_seq),  # its event is still stored
    )
    queued = (
        insert(webhook_delivery)
        .from_select(_QUEUED_COLUMNS, copy)
        .returning(*_RECORD)
        .cte("queued")
    )
    row = (await conn.execute(select(queued).add_cte(enqueued(queued, stamp)))).first()
    if row is None:
        return None
    await _notified(conn, 1)
    return DeliveryRecord(**row._mapping)


async def delete_delivered(conn: AsyncConnection, cutoff: datetime, *, chunk: int) -> int:
    """Delete up to `chunk` delivered rows created before `cutoff` (retention)."""
    old = webhook_delivery.alias("old")
    expired = (
        select(old.c.id).where(old.c.status == "delivered", old.c.created_at < cutoff).limit(chunk)
    )
    deleted = await conn.execute(delete(webhook_delivery).where(_d.id.in_(expired)))
    return int(deleted.rowcount)
