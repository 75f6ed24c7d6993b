"""All SQL of the EHR sync tables: endpoints, the push queue, remote ids and watermarks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.ehr.endpoints import EhrEndpoint

__all__ = [
    "DeadLetter",
    "EndpointRow",
    "PushItem",
    "RemoteRef",
    "claim_push_items",
    "dead_letter",
    "dead_letters",
    "endpoint_row",
    "enqueue_push",
    "finish_push_item",
    "local_id_of",
    "queue_counts",
    "record_endpoint_error",
    "record_endpoint_success",
    "remember_remote",
    "remote_of",
    "reschedule_push_item",
    "retry_dead_letter",
    "set_capabilities",
    "set_watermark",
    "sync_endpoints",
    "watermark_of",
]


@dataclass(frozen=True)
class PushItem:
    """A claimed unit of push work."""

    id: int
    endpoint: str
    kind: str  # resource | course-summary
    resource_type: str
    resource_id: str
    generation: int
    attempts: int
    enqueued_at: datetime


@dataclass(frozen=True)
class DeadLetter:
    """Push work the EHR refused, with its OperationOutcome, kept until retried."""

    id: int
    kind: str
    resource_type: str
    resource_id: str
    attempts: int
    last_error: str | None
    operation_outcome: dict[str, Any] | None
    dead_at: datetime | None


@dataclass(frozen=True)
class RemoteRef:
    """What an endpoint knows as one of our resources."""

    remote_id: str
    remote_version: str | None
    local_version: int | None
    direction: str


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


# -- endpoints ---------------------------------------------------------------------------------


async def sync_endpoints(conn: AsyncConnection, endpoints: Sequence[EhrEndpoint]) -> None:
    """Make the endpoint rows match the endpoints file (rows of removed entries stay, unused)."""
    await conn.execute(text("UPDATE ehr_endpoint SET configured = false"))
    for endpoint in endpoints:
        await conn.execute(
            text(
                "INSERT INTO ehr_endpoint (name, configured, push_types) "
                "VALUES (:name, true, :push) ON CONFLICT (name) DO UPDATE "
                "SET configured = true, push_types = EXCLUDED.push_types"
            ),
            {"name": endpoint.name, "push": list(endpoint.push)},
        )


async def set_capabilities(
    conn: AsyncConnection,
    name: str,
    summary: dict[str, Any],
    accepted: Sequence[str],
    now: datetime,
) -> None:
    """Store what the CapabilityStatement said and which push types it accepts."""
    await conn.execute(
        text(
            "UPDATE ehr_endpoint SET capabilities = CAST(:summary AS jsonb), "
            "accepted_types = :accepted, capabilities_at = :now WHERE name = :name"
        ),
        {
            "name": name,
            "summary": orjson.dumps(summary).decode(),
            "accepted": list(accepted),
            "now": now,
        },
    )


async def record_endpoint_success(
    conn: AsyncConnection, name: str, direction: str, now: datetime
) -> None:
    """Note a successful push or a complete pull pass."""
    column = "last_push_at" if direction == "push" else "last_pull_at"
    await conn.execute(
        text(f"UPDATE ehr_endpoint SET {column} = :now WHERE name = :name"),
        {"name": name, "now": now},
    )


async def record_endpoint_error(
    conn: AsyncConnection, name: str, error: str, now: datetime
) -> None:
    """Note the last failure's kind (never patient data)."""
    await conn.execute(
        text(
            "UPDATE ehr_endpoint SET last_error = :error, last_error_at = :now WHERE name = :name"
        ),
        {"name": name, "error": error[:200], "now": now},
    )


async def endpoint_row(conn: AsyncConnection, name: str) -> EndpointRow | None:
    """The stored state of `name`, or None."""
    row = (
        (await conn.execute(text("SELECT * FROM ehr_endpoint WHERE name = :name"), {"name": name}))
        .mappings()
        .first()
    )
    return EndpointRow(**dict(row)) if row else None


# -- push queue --------------------------------------------------------------------------------


async def enqueue_push(
    conn: AsyncConnection,
    *,
    kind: str,
    resource_type: str,
    resource_id: str,
    push_type: str,
    now: datetime,
    exclude: Sequence[str] = (),
) -> None:
    """Queue push work for every configured endpoint that pushes `push_type`.

    A pending row is kept (its backoff too) and its generation bumped, so a push in flight
    is sent again with the newer content; a dead letter becomes pending again, due now.
    """
    await conn.execute(
        text(
            "INSERT INTO ehr_push_item (endpoint, kind, resource_type, resource_id, status, "
            "generation, attempts, enqueued_at, due_at) "
            "SELECT name, :kind, :type, :id, 'pending', 1, 0, :now, :now FROM ehr_endpoint "
            "WHERE configured AND :push_type = ANY(push_types) "
            "AND (accepted_types IS NULL OR :push_type = ANY(accepted_types)) "
            "AND NOT (name = ANY(:exclude)) "
            "ON CONFLICT (endpoint, kind, resource_type, resource_id) DO UPDATE SET "
            "generation = ehr_push_item.generation + 1, "
            "attempts = CASE WHEN ehr_push_item.status = 'dead' THEN 0 "
            "ELSE ehr_push_item.attempts END, "
            "due_at = CASE WHEN ehr_push_item.status = 'dead' THEN EXCLUDED.due_at "
            "ELSE ehr_push_item.due_at END, "
            "enqueued_at = CASE WHEN ehr_push_item.status = 'dead' THEN EXCLUDED.enqueued_at "
            "ELSE ehr_push_item.enqueued_at END, "
            "status = 'pending', operation_outcome = NULL, dead_at = NULL"
        ),
        {
            "kind": kind,
            "type": resource_type,
            "id": resource_id,
            "push_type": push_type,
            "now": now,
            "exclude": list(exclude),
        },
    )


async def claim_push_items(
    conn: AsyncConnection, endpoint: str, now: datetime, lease: timedelta, limit: int
) -> list[PushItem]:
    """Lease up to `limit` due items of `endpoint` (SKIP LOCKED: workers never wait)."""
    rows = await conn.execute(
        text(
            "UPDATE ehr_push_item SET claimed_until = :until WHERE id IN ("
            "SELECT id FROM ehr_push_item WHERE endpoint = :endpoint AND status = 'pending' "
            "AND due_at <= :now AND (claimed_until IS NULL OR claimed_until < :now) "
            "ORDER BY due_at, id LIMIT :limit FOR UPDATE SKIP LOCKED) "
            "RETURNING id, endpoint, kind, resource_type, resource_id, generation, attempts, "
            "enqueued_at"
        ),
        {"endpoint": endpoint, "now": now, "until": now + lease, "limit": limit},
    )
    items = [PushItem(**dict(row)) for row in rows.mappings()]
    return sorted(items, key=lambda item: (item.enqueued_at, item.id))


async def finish_push_item(conn: AsyncConnection, item: PushItem) -> None:
    """Drop a pushed (or skipped) item, unless a newer write asked for it again meanwhile."""
    deleted = await conn.execute(
        text("DELETE FROM ehr_push_item WHERE id = :id AND generation = :generation"),
        {"id": item.id, "generation": item.generation},
    )
    if not deleted.rowcount:
        await conn.execute(
            text("UPDATE ehr_push_item SET claimed_until = NULL WHERE id = :id"), {"id": item.id}
        )


async def reschedule_push_item(
    conn: AsyncConnection, item: PushItem, due_at: datetime, error: str
) -> None:
    """Try the item again at `due_at` (backoff), counting the failed attempt."""
    await conn.execute(
        text(
            "UPDATE ehr_push_item SET due_at = :due, claimed_until = NULL, "
            "attempts = attempts + 1, last_error = :error WHERE id = :id"
        ),
        {"id": item.id, "due": due_at, "error": error[:200]},
    )


async def dead_letter(
    conn: AsyncConnection,
    item: PushItem,
    error: str,
    outcome: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Park the item as a dead letter with the EHR's OperationOutcome.

    A write that came in during this push wins: the item stays pending for its new content.
    """
    await conn.execute(
        text(
            "UPDATE ehr_push_item SET claimed_until = NULL, attempts = attempts + 1, "
            "last_error = :error, status = CASE WHEN generation = :generation THEN 'dead' "
            "ELSE 'pending' END, "
            "dead_at = CASE WHEN generation = :generation THEN CAST(:now AS timestamptz) END, "
            "operation_outcome = CASE WHEN generation = :generation "
            "THEN CAST(:outcome AS jsonb) END WHERE id = :id"
        ),
        {
            "id": item.id,
            "generation": item.generation,
            "error": error[:200],
            "now": now,
            "outcome": orjson.dumps(outcome).decode() if outcome is not None else None,
        },
    )


async def dead_letters(
    conn: AsyncConnection, endpoint: str, *, limit: int = 100
) -> list[DeadLetter]:
    """The endpoint's dead letters, newest first."""
    rows = await conn.execute(
        text(
            "SELECT id, kind, resource_type, resource_id, attempts, last_error, "
            "operation_outcome, dead_at FROM ehr_push_item "
            "WHERE endpoint = :endpoint AND status = 'dead' ORDER BY dead_at DESC, id DESC "
            "LIMIT :limit"
        ),
        {"endpoint": endpoint, "limit": limit},
    )
    return [DeadLetter(**dict(row)) for row in rows.mappings()]


async def retry_dead_letter(
    conn: AsyncConnection, endpoint: str, item_id: int, now: datetime
) -> bool:
    """Make a dead letter pending again, due now; False when there is no such dead letter."""
    result = await conn.execute(
        text(
            "UPDATE ehr_push_item SET status = 'pending', attempts = 0, due_at = :now, "
            "enqueued_at = :now, dead_at = NULL, operation_outcome = NULL, "
            "generation = generation + 1 "
            "WHERE id = :id AND endpoint = :endpoint AND status = 'dead'"
        ),
        {"id": item_id, "endpoint": endpoint, "now": now},
    )
    return bool(result.rowcount)


async def queue_counts(conn: AsyncConnection, endpoint: str) -> tuple[int, int, datetime | None]:
    """Pending items, dead letters, and the oldest pending item's enqueue time (the lag)."""
    row = (
        await conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, "
                "count(*) FILTER (WHERE status = 'dead') AS dead, "
                "min(enqueued_at) FILTER (WHERE status = 'pending') AS oldest "
                "FROM ehr_push_item WHERE endpoint = :endpoint"
            ),
            {"endpoint": endpoint},
        )
    ).one()
    return int(row.pending), int(row.dead), row.oldest


# -- remote ids --------------------------------------------------------------------------------


async def remote_of(
    conn: AsyncConnection, endpoint: str, resource_type: str, resource_id: str
) -> RemoteRef | None:
    """What `endpoint` knows as our `resource_type/resource_id`, or None."""
    row = (
        (
            await conn.execute(
                text(
                    "SELECT remote_id, remote_version, local_version, direction FROM ehr_remote "
                    "WHERE endpoint = :endpoint AND resource_type = :type AND resource_id = :id"
                ),
                {"endpoint": endpoint, "type": resource_type, "id": resource_id},
            )
        )
        .mappings()
        .first()
    )
    return RemoteRef(**dict(row)) if row else None


async def local_id_of(
    conn: AsyncConnection, endpoint: str, resource_type: str, remote_id: str
) -> str | None:
    """Our id of the endpoint's `resource_type/remote_id`, or None."""
    value = await conn.scalar(
        text(
            "SELECT resource_id FROM ehr_remote WHERE endpoint = :endpoint "
            "AND resource_type = :type AND remote_id = :remote ORDER BY synced_at DESC LIMIT 1"
        ),
        {"endpoint": endpoint, "type": resource_type, "remote": remote_id},
    )
    return str(value) if value is not None else None


async def remember_remote(
    conn: AsyncConnection,
    endpoint: str,
    resource_type: str,
    resource_id: str,
    ref: RemoteRef,
    now: datetime,
) -> None:
    """Record (or replace) what `endpoint` knows as our resource."""
    await conn.execute(
        text(
            "INSERT INTO ehr_remote (endpoint, resource_type, resource_id, remote_id, "
            "remote_version, local_version, direction, synced_at) VALUES (:endpoint, :type, "
            ":id, :remote, :version, :local, :direction, :now) "
            "ON CONFLICT (endpoint, resource_type, resource_id) DO UPDATE SET "
            "remote_id = EXCLUDED.remote_id, remote_version = EXCLUDED.remote_version, "
            "local_version = EXCLUDED.local_version, direction = EXCLUDED.direction, "
            "synced_at = EXCLUDED.synced_at"
        ),
        {
            "endpoint": endpoint,
            "type": resource_type,
            "id": resource_id,
            "remote": ref.remote_id,
            "version": ref.remote_version,
            "local": ref.local_version,
            "direction": ref.direction,
            "now": now,
        },
    )


# -- pull watermarks ---------------------------------------------------------------------------


async def watermark_of(
    conn: AsyncConnection, endpoint: str, resource_type: str, patient_id: str
) -> str | None:
    """The greatest remote `lastUpdated` stored for this endpoint, type and patient."""
    value = await conn.scalar(
        text(
            "SELECT watermark FROM ehr_watermark WHERE endpoint = :endpoint "
            "AND resource_type = :type AND patient_id = :patient"
        ),
        {"endpoint": endpoint, "type": resource_type, "patient": patient_id},
    )
    return str(value) if value is not None else None


async def set_watermark(
    conn: AsyncConnection,
    endpoint: str,
    resource_type: str,
    patient_id: str,
    watermark: str,
    now: datetime,
) -> None:
    """Advance the watermark (in the transaction that stored the page)."""
    await conn.execute(
        text(
            "INSERT INTO ehr_watermark (endpoint, resource_type, patient_id, watermark, "
            "updated_at) VALUES (:endpoint, :type, :patient, :watermark, :now) "
            "ON CONFLICT (endpoint, resource_type, patient_id) DO UPDATE SET "
            "watermark = EXCLUDED.watermark, updated_at = EXCLUDED.updated_at"
        ),
        {
            "endpoint": endpoint,
            "type": resource_type,
            "patient": patient_id,
            "watermark": watermark,
            "now": now,
        },
    )
