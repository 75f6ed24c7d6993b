"""SQL of `ehr_endpoint`: the endpoints of the endpoints file and what each last did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import ehr_endpoint
from ipt_core.ehr.endpoints import EhrEndpoint

__all__ = [
    "EndpointRow",
    "any_configured_endpoint",
    "endpoint_row",
    "record_endpoint_error",
    "record_endpoint_success",
    "set_capabilities",
    "sync_endpoints",
]

# An error kind is short; the cap keeps a surprising message from filling the row.
ERROR_CHARS = 200


@dataclass(frozen=True)
class EndpointRow:
    """The stored state of one endpoint."""

    name: str
    configured: bool
    push_types: list[str]
    accepted_types: list[str] | None
    capabilities: dict[str, Any] | None
    capabilities_at: datetime | None
    last_push_at: datetime | None
    last_pull_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


async def sync_endpoints(conn: AsyncConnection, endpoints: Sequence[EhrEndpoint]) -> None:
    """Make the endpoint rows match the endpoints file (rows of removed entries stay, unused)."""
    e = ehr_endpoint
    await conn.execute(update(e).values(configured=False))
    for endpoint in endpoints:
        statement = insert(e).values(
            name=endpoint.name, configured=True, push_types=list(endpoint.push)
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[e.c.name],
                set_={"configured": True, "push_types": statement.excluded.push_types},
            )
        )


async def set_capabilities(
    conn: AsyncConnection,
    name: str,
    summary: dict[str, Any],
    accepted: Sequence[str],
    now: datetime,
) -> None:
    """Store what the CapabilityStatement said and which push types it accepts."""
    await _update(
        conn, name, capabilities=summary, accepted_types=list(accepted), capabilities_at=now
    )


async def record_endpoint_success(
    conn: AsyncConnection, name: str, direction: str, now: datetime
) -> None:
    """Note a successful push or a complete pull pass."""
    column = "last_push_at" if direction == "push" else "last_pull_at"
    await _update(conn, name, **{column: now})


async def record_endpoint_error(
    conn: AsyncConnection, name: str, error: str, now: datetime
) -> None:
    """Note the last failure's kind (never patient data)."""
    await _update(conn, name, last_error=error[:ERROR_CHARS], last_error_at=now)


async def endpoint_row(conn: AsyncConnection, name: str) -> EndpointRow | None:
    """The stored state of `name`, or None."""
    query = select(ehr_endpoint).where(ehr_endpoint.c.name == name)
    row = (await conn.execute(query)).mappings().first()
    return EndpointRow(**dict(row)) if row else None


async def any_configured_endpoint(conn: AsyncConnection) -> bool:
    """Whether the endpoints file names any endpoint (else nothing is ever pushed)."""
    return bool(await conn.scalar(select(exists().where(ehr_endpoint.c.configured))))


async def _update(conn: AsyncConnection, name: str, **values: Any) -> None:
    await conn.execute(update(ehr_endpoint).where(ehr_endpoint.c.name == name).values(**values))
