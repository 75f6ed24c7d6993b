"""SQL of the delivery queues' claims: which worker process sends which queue, and its rows.

A queue is the deliveries of one endpoint and partition key (course), sent strictly one after
the other, oldest first: only a queue whose head is due is sendable, so a failing event holds
back later events of its course and nothing else. Claims read the queue table
(`queue_table`: one row per queue with deliveries pending, and when its head is due), never
the deliveries, so no backlog (an endpoint failing for hours, or disabled with thousands
pending) makes a claim slower. Every worker process delivers: a process sends a queue only
while it holds that queue's session advisory lock (`lock_sendable`), so the queues are shared
out and each is sent by one process at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    exists,
    func,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ipt_core.db.advisory import TWO_INTS, held_advisory_locks
from ipt_core.db.schema import (
    is_pending,
    outbox,
    webhook_delivery,
    webhook_endpoint,
    webhook_queue,
)
from ipt_core.db.unnest import unnest_params
from ipt_core.events.webhooks._model import DueDelivery, Queue

__all__ = [
    "QUEUE_LOCKS",
    "lock_sendable",
    "plan_each_claim",
    "queue_key",
    "queue_params",
    "queued",
    "unlock",
]

# The first key of every delivery queue's advisory lock (the two-int form, kept apart from the
# one-bigint keys of relay leadership and worker liveness; `ipt_core.db.advisory`).
QUEUE_LOCKS: Final = 0x57484B  # "WHK"
_QUEUE_LOCKS: Final = literal(QUEUE_LOCKS, Integer)
_d: Final = webhook_delivery.c
_e: Final = webhook_endpoint.c
_q: Final = webhook_queue.c


def queue_key(endpoint_id: Any, partition_key: Any) -> ColumnElement[int]:
    """The second key of a queue's advisory lock: a 31-bit hash of (endpoint, partition key).

    Non-negative, so it equals `pg_locks.objid` as a bigint. Two queues that hash alike only
    share a lock: neither is ever sent by two processes at once.
    """
    return func.hashtext(endpoint_id + " " + partition_key).op("&")(0x7FFFFFFF)


def _lock_sendable() -> Select[Any]:
    """The due queues, longest due first, that no session holds: lock up to `queues` of them.

    One index range scan of `ix_webhook_queue_due`: it reads the due queues in order and stops
    once it has enough, passing over only those some process holds (at most what the
    processes have claimed). Queues not due (held back by a failure, or their endpoint
    disabled) are not in the range at all.
    """
    held = held_advisory_locks(TWO_INTS).cte("held").prefix_with("MATERIALIZED")
    key = queue_key(_q.endpoint_id, _q.partition_key)
    due = (
        select(_q.endpoint_id, _q.partition_key, key.label("key"))
        .where(
            _q.due_at <= bindparam("now"),
            # Only a race leaves a disabled endpoint's queue due (`reconcile` parks it again).
            exists().where(_e.id == _q.endpoint_id, _e.enabled),
            ~exists().where(held.c.classid == QUEUE_LOCKS, held.c.objid == key),
        )
        .order_by(_q.due_at)
        .limit(bindparam("queues"))
        .cte("due")
        .prefix_with("MATERIALIZED")  # so each candidate is tried once, and only those
    )
    return select(due.c.endpoint_id, due.c.partition_key).where(
        func.pg_try_advisory_lock(_QUEUE_LOCKS, due.c.key)
    )


def _queued() -> Select[Any]:
    owned = unnest_params("owned", endpoint_id=Text, partition_key=Text)
    queue = (
        select(_d.id, _d.attempts, _d.next_attempt_at, _d.event_seq)
        .where(
            _d.endpoint_id == owned.c.endpoint_id,
            _d.partition_key == owned.c.partition_key,
            is_pending(_d.status),
        )
        .order_by(_d.id)
        .limit(bindparam("per_queue"))
        .lateral("queue")
    )
    return (
        select(
            queue.c.id,
            owned.c.endpoint_id,
            owned.c.partition_key,
            _e.url,
            _e.secret,
            queue.c.attempts,
            queue.c.next_attempt_at,
            outbox.c.payload.label("envelope"),
        )
        .select_from(
            owned.join(queue, true())
            .join(webhook_endpoint, and_(_e.id == owned.c.endpoint_id, _e.enabled))
            .join(outbox, outbox.c.seq == queue.c.event_seq)
        )
        .order_by(queue.c.id)
    )


def _unlock() -> Select[Any]:
    released = unnest_params("released", endpoint_id=Text, partition_key=Text)
    key = queue_key(released.c.endpoint_id, released.c.partition_key)
    return select(func.pg_advisory_unlock(_QUEUE_LOCKS, key)).select_from(released)


# Built once: the delivery loop runs them for every round of queues (building a Core statement
# costs more CPU than running it; docs/architecture.md#events-outbox-and-relay).
_LOCK_SENDABLE: Final = _lock_sendable()
_QUEUED: Final = _queued()
_UNLOCK: Final = _unlock()
_PLAN_EACH_CALL: Final = text("SET plan_cache_mode = force_custom_plan")


async def lock_sendable(conn: AsyncConnection, now: datetime, *, queues: int) -> list[Queue]:
    """Lock up to `queues` of the oldest queues whose head is due and no session holds.

    A queue is an (endpoint, partition key) of an enabled endpoint. Each lock is a session
    advisory lock on `conn`: held until `unlock` or until the session ends (the process died,
    the connection dropped), so no two worker processes send one queue at a time. Read the
    locked queues' rows afterwards (`queued`), in a statement of their own: this one's snapshot
    is older than its locks, and may show rows another process has delivered meanwhile.
    """
    rows = await conn.execute(_LOCK_SENDABLE, {"now": now, "queues": queues})
    return [(row.endpoint_id, row.partition_key) for row in rows]


async def plan_each_claim(conn: AsyncConnection) -> None:
    """Plan the claims on `conn` with each call's values and the tables as they are then.

    asyncpg prepares each statement once per connection, and PostgreSQL keeps a generic plan
    after five runs. One made while the tables were new (a few rows, no statistics) can read
    a queue's rows through the endpoint's delivery-log index, walking every delivery of the
    endpoint for each queue: 20-300 ms a claim and growing, webhook p99 10-40 s in the events
    benchmark until autovacuum's ANALYZE replaced the plan (bench/PROFILE.md, "Twentieth
    round"). Claims are paced (at most ~50 a second), so planning each costs little.
    """
    await conn.execute(_PLAN_EACH_CALL)


async def queued(
    conn: AsyncConnection, queues: Sequence[Queue], *, per_queue: int
) -> list[DueDelivery]:
    """Up to `per_queue` pending rows of each of `queues` (enabled endpoints only), by id."""
    if not queues:
        return []
    rows = await conn.execute(_QUEUED, {"per_queue": per_queue, **queue_params(queues)})
    return [DueDelivery(**row._mapping) for row in rows]


async def unlock(conn: AsyncConnection, queues: Sequence[Queue]) -> None:
    """Release the locks `lock_sendable` took on `conn` for `queues` (once per time taken)."""
    if queues:
        await conn.execute(_UNLOCK, queue_params(queues))


def queue_params(queues: Sequence[Queue]) -> dict[str, list[str]]:
    """`queues` as the arrays of an `unnest_params(…, endpoint_id=…, partition_key=…)`."""
    return {
        "each_endpoint_id": [endpoint for endpoint, _ in queues],
        "each_partition_key": [key for _, key in queues],
    }
