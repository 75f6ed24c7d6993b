"""SQL of what each EHR knows of us: `ehr_remote` (remote ids) and `ehr_watermark` (pulls)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import ehr_remote, ehr_watermark

__all__ = [
    "RemoteRef",
    "local_id_of",
    "remember_remote",
    "remote_of",
    "set_watermark",
    "watermark_of",
]


@dataclass(frozen=True)
class RemoteRef:
    """What an endpoint knows as one of our resources."""

    remote_id: str
    remote_version: str | None
    local_version: int | None
    direction: str


async def remote_of(
    conn: AsyncConnection, endpoint: str, resource_type: str, resource_id: str
) -> RemoteRef | None:
    """What `endpoint` knows as our `resource_type/resource_id`, or None."""
    r = ehr_remote
    query = select(r.c.remote_id, r.c.remote_version, r.c.local_version, r.c.direction).where(
        r.c.endpoint == endpoint, r.c.resource_type == resource_type, r.c.resource_id == resource_id
    )
    row = (await conn.execute(query)).mappings().first()
    return RemoteRef(**dict(row)) if row else None


async def local_id_of(
    conn: AsyncConnection, endpoint: str, resource_type: str, remote_id: str
) -> str | None:
    """Our id of the endpoint's `resource_type/remote_id`, or None."""
    r = ehr_remote
    query = (
        select(r.c.resource_id)
        .where(r.c.endpoint == endpoint, r.c.resource_type == resource_type)
        .where(r.c.remote_id == remote_id)
        .order_by(r.c.synced_at.desc())
        .limit(1)
    )
    return await _text(conn, query)


async def remember_remote(
    conn: AsyncConnection,
    endpoint: str,
    resource_type: str,
    resource_id: str,
    ref: RemoteRef,
    now: datetime,
) -> None:
    """Record (or replace) what `endpoint` knows as our resource."""
    key = {"endpoint": endpoint, "resource_type": resource_type, "resource_id": resource_id}
    values = {
        "remote_id": ref.remote_id,
        "remote_version": ref.remote_version,
        "local_version": ref.local_version,
        "direction": ref.direction,
        "synced_at": now,
    }
    await _upsert(conn, ehr_remote, key, values)


async def watermark_of(
    conn: AsyncConnection, endpoint: str, resource_type: str, patient_id: str
) -> str | None:
    """The greatest remote `lastUpdated` stored for this endpoint, type and patient."""
    w = ehr_watermark
    query = select(w.c.watermark).where(
        w.c.endpoint == endpoint, w.c.resource_type == resource_type, w.c.patient_id == patient_id
    )
    return await _text(conn, query)


async def set_watermark(
    conn: AsyncConnection,
    endpoint: str,
    resource_type: str,
    patient_id: str,
    watermark: str,
    now: datetime,
) -> None:
    """Advance the watermark (in the transaction that stored the page)."""
    key = {"endpoint": endpoint, "resource_type": resource_type, "patient_id": patient_id}
    await _upsert(conn, ehr_watermark, key, {"watermark": watermark, "updated_at": now})


async def _upsert(
    conn: AsyncConnection, table: Table, key: dict[str, str], values: dict[str, Any]
) -> None:
    statement = insert(table).values(**key, **values)
    changes = {name: statement.excluded[name] for name in values}
    await conn.execute(statement.on_conflict_do_update(index_elements=list(key), set_=changes))


async def _text(conn: AsyncConnection, query: Select[Any]) -> str | None:
    value = await conn.scalar(query)
    return str(value) if value is not None else None
