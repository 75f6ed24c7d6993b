"""The relay's publication of a batch, in one statement.

Publishing a batch stamps its events published, gives them the next feed positions (the
ordered feed's cursor, in `seq` order), and queues their webhook deliveries when the relay
delivers webhooks. One statement does all of it, and PostgreSQL runs a lone statement as a
transaction of its own: a relay whose publishers all live in the database publishes a batch
in one round trip. It used to take five (`BEGIN`, the locking read, the fan-out, the stamp,
`COMMIT`), and in `ipt run` each round trip wakes the worker's thread, which then takes the
interpreter from the API's thread (bench/PROFILE.md, "Eighteenth round"; docs/architecture.md,
"Events: outbox and relay").

A relay with publishers outside the database (NATS) reads and locks the batch first, hands
it to them, then stamps the same events with this statement, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    DateTime,
    Select,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.fixed import FixedStatement
from ipt_core.db.schema import feed_position, outbox
from ipt_core.events._repository import FEED_CHANNEL, oldest_unpublished
from ipt_core.events.webhooks import fanned_out

__all__ = ["Published", "publish_oldest", "stamp_published"]


@dataclass(frozen=True)
class Published:
    """One event of a published batch: its global `seq`, type and when it was written."""

    seq: int
    type: str
    created_at: datetime


_BATCH_COLUMNS: Final = (
    outbox.c.seq,
    outbox.c.id,
    outbox.c.type,
    outbox.c.aggregateid,
    outbox.c.created_at,
)
_OLDEST: Final = oldest_unpublished(*_BATCH_COLUMNS)
# The events an outside publisher was handed, locked already by `unpublished`.
_GIVEN: Final = select(*_BATCH_COLUMNS).where(
    outbox.c.seq == any_(bindparam("seqs", type_=ARRAY(BigInteger)))
)


def _publishing(batch: Select[Any], *, fan_out: bool) -> FixedStatement:
    """Stamp `batch` published with feed positions in `seq` order, NOTIFY feed readers and,
    with `fan_out`, queue the webhook deliveries; return the batch's rows in `seq` order."""
    events = batch.cte("batch")
    ordered = select(events.c.seq).order_by(events.c.seq).subquery("ordered")
    positions = select(ordered.c.seq, feed_position.next_value().label("position")).cte("positions")
    now = bindparam("now", type_=DateTime(timezone=True))
    stamped = (
        update(outbox)
        .values(published_at=now, feed_position=positions.c.position)
        .where(outbox.c.seq == positions.c.seq)
        .cte("stamped")  # PostgreSQL runs a data-modifying CTE whether or not it is read
    )
    ctes = [events, positions, stamped]
    # An uncorrelated scalar subquery runs once, at the first row: an empty batch wakes no one.
    columns = [
        events.c.seq,
        events.c.type,
        events.c.created_at,
        select(func.pg_notify(FEED_CHANNEL, "")).scalar_subquery().label("feed_woken"),
    ]
    if fan_out:
        parts, woken = fanned_out(events, now)
        ctes.extend(parts)
        columns.append(woken.label("deliveries_woken"))
    return FixedStatement(select(*columns).add_cte(*ctes).order_by(events.c.seq))


_PUBLISH_OLDEST: Final = {fan: _publishing(_OLDEST, fan_out=fan) for fan in (False, True)}
_STAMP_GIVEN: Final = {fan: _publishing(_GIVEN, fan_out=fan) for fan in (False, True)}


async def publish_oldest(
    conn: AsyncConnection, limit: int, now: datetime, *, fan_out: bool
) -> list[Published]:
    """Publish up to `limit` of the oldest unpublished events: stamp them published at `now`
    with the next feed positions and, with `fan_out`, queue their webhook deliveries.

    One statement: on a connection in autocommit it commits on its own.
    """
    rows = await _PUBLISH_OLDEST[fan_out].execute(conn, {"limit": limit, "now": now})
    return _published(rows)


async def stamp_published(
    conn: AsyncConnection, seqs: Sequence[int], now: datetime, *, fan_out: bool
) -> list[Published]:
    """As `publish_oldest`, for the events `seqs`, which the caller's transaction locked
    (`unpublished`) and handed to the publishers outside the database."""
    rows = await _STAMP_GIVEN[fan_out].execute(conn, {"seqs": list(seqs), "now": now})
    return _published(rows)


def _published(rows: Sequence[Any]) -> list[Published]:
    return [Published(row["seq"], row["type"], row["created_at"]) for row in rows]
