"""The ordered feed for pull consumers: published events by feed position."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["FeedEntry", "read_feed"]


@dataclass(frozen=True)
class FeedEntry:
    """One published event and its feed position (the cursor a consumer resumes from)."""

    position: int
    envelope: dict[str, Any]


async def read_feed(
    conn: AsyncConnection, *, after: int, types: Sequence[str] = (), limit: int = 100
) -> list[FeedEntry]:
    """Return up to `limit` events published after position `after`, oldest first.

    Positions are numbered by the one relay leader as it publishes, so a consumer that
    resumes after the last position it saw never misses an event that committed later.
    """
    type_filter = "AND type = ANY(:types) " if types else ""
    rows = await conn.execute(
        text(
            "SELECT feed_position, payload FROM outbox WHERE feed_position > :after "
            f"{type_filter}ORDER BY feed_position LIMIT :limit"
        ),
        {"after": after, "types": list(types), "limit": limit},
    )
    return [FeedEntry(row.feed_position, row.payload) for row in rows]
