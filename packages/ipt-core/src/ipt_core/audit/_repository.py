"""All SQL of the `audit_event` table: append, read, search (newest first), purge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import ColumnElement, Integer, Text, delete, or_, select
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.audit._model import INTERACTIONS, AuditRecord, audit_event_json
from ipt_core.db.fixed import FixedStatement
from ipt_core.db.json_rows import json_rows, rows_json
from ipt_core.db.parts import PartSql, RowsPart
from ipt_core.db.schema import audit_event
from ipt_core.db.unnest import INSTANT

__all__ = [
    "AuditFilter",
    "insert_records",
    "purge_before",
    "read_record",
    "records_part",
    "search_records",
]


@dataclass(frozen=True)
class AuditFilter:
    """Search criteria; every given criterion must hold (values of one are OR-ed)."""

    since: datetime | None = None  # recorded >= since
    until: datetime | None = None  # recorded < until
    agents: tuple[str, ...] = ()  # subject or client id
    entities: tuple[tuple[str, str | None], ...] = ()  # (type, id or None for any)
    patients: tuple[str, ...] = ()
    subtypes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    outcomes: tuple[int, ...] = ()


# The append of a whole batch: one statement built once, the records as one JSON parameter
# (`json_rows`). A SQLAlchemy executemany of 500 records took 18 ms of CPU in the API's event
# loop (one parameter set per row); every read waiting behind that stall was the read tail.
_TYPES: Final[dict[str, Any]] = {
    "id": Text,
    "recorded": INSTANT,
    "subtype": Text,
    "action": Text,
    "outcome": Integer,
    "agent": Text,
    "client_id": Text,
    "entity_type": Text,
    "entity_id": Text,
    "patient_id": Text,
    "source_address": Text,
    "version_id": Integer,
    "parameter_names": Text,
    "outcome_status": Integer,
}
_ALL: Final = tuple(_TYPES)  # the order of `_row`


def _inserted(prefix: str, written: ColumnElement[bool] | None) -> Insert:
    # A record is written once: an id already there is skipped (a batch retried after a lost
    # answer).
    rows = json_rows("a", f"{prefix}_rows", **_TYPES)
    chosen = select(*rows.c) if written is None else select(*rows.c).where(written)
    return (
        pg_insert(audit_event)
        .from_select(list(_ALL), chosen)
        .on_conflict_do_nothing(index_elements=[audit_event.c.id])
    )


def appended_records(prefix: str, written: ColumnElement[bool] | None) -> PartSql:
    """`insert_records` as a part of another statement (`ipt_core.db.parts`)."""
    return PartSql((_inserted(prefix, written).cte(f"{prefix}_audited"),))


_INSERT: Final = FixedStatement(_inserted("each", None))
# What a read renders an AuditEvent from: the facts, and the content of rows before 0006.
_STORED: Final = (*(audit_event.c[name] for name in _ALL), audit_event.c.content)
_INTERACTION_OF: Final = {subtype: name for name, (subtype, _) in INTERACTIONS.items()}


async def insert_records(conn: AsyncConnection, records: Sequence[AuditRecord]) -> None:
    """Append `records` (in the caller's transaction), with one statement."""
    if records:
        await _INSERT.execute(conn, records_part(records).bound("each"))


def records_part(records: Sequence[AuditRecord]) -> RowsPart:
    """`records` as rows of another statement (a resource write's own)."""
    return RowsPart(appended_records, {"rows": rows_json(_ALL, map(_row, records))})


async def copy_records(driver: Any, records: Sequence[AuditRecord]) -> None:
    """Append `records` with one COPY on an asyncpg connection in autocommit (all or none).

    The batched read records' path (the API's audit buffer): binary COPY encodes each row
    with the columns' codecs, cheaper for hundreds of rows than `insert_records`' statement
    (bench/PROFILE.md, "Fourth round", when that sent one array per column).
    """
    if not records:
        return
    rows = [_row(r) for r in records]
    try:
        await driver.copy_records_to_table(audit_event.name, records=rows, columns=_ALL)
    except asyncpg.UniqueViolationError:
        # The batch was written before, but its answer was lost (the connection dropped at
        # the end), so the buffer kept it: insert what is missing instead. Without this the
        # same batch would fail every flush and hold up every record queued behind it.
        await driver.execute(_INSERT.sql, *_INSERT.arguments(records_part(records).bound("each")))


def _row(r: AuditRecord) -> tuple[Any, ...]:
    """The columns of `_ALL` for `r`: its facts, from which a read renders the AuditEvent."""
    patient = r.patient_id or r.patient_scope  # the one patient the AuditEvent names
    names = ",".join(r.query_names) if r.query_names else None
    return (r.id, r.recorded, r.subtype, r.action, r.outcome, r.agent, r.client_id,
            r.entity_type, r.entity_id, patient, r.source_address, r.version_id, names,
            r.outcome_status)  # fmt: skip


def _event(row: Any) -> dict[str, Any]:
    """The AuditEvent of a stored row: rendered from its facts, or as stored before 0006."""
    if row.content is not None:
        content: dict[str, Any] = row.content
        return content
    return audit_event_json(
        AuditRecord(
            id=row.id,
            recorded=row.recorded,
            interaction=_INTERACTION_OF[row.subtype],
            outcome=row.outcome,
            agent=row.agent,
            client_id=row.client_id,
            source_address=row.source_address,
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            version_id=row.version_id,
            query_names=tuple(row.parameter_names.split(",")) if row.parameter_names else (),
            patient_id=row.patient_id,
            outcome_status=row.outcome_status,
        )
    )


async def read_record(conn: AsyncConnection, id_: str) -> dict[str, Any] | None:
    """Return the AuditEvent `id_`, or None."""
    row = (await conn.execute(select(*_STORED).where(audit_event.c.id == id_))).one_or_none()
    return _event(row) if row is not None else None


async def search_records(
    conn: AsyncConnection, where: AuditFilter, *, limit: int, before_seq: int | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """Return up to `limit` (seq, AuditEvent) pairs, newest first, older than `before_seq`."""
    a = audit_event.c
    statement = select(a.seq, *_STORED).where(*_conditions(where)).order_by(a.seq.desc())
    if before_seq is not None:
        statement = statement.where(a.seq < before_seq)
    rows = await conn.execute(statement.limit(limit))
    return [(row.seq, _event(row)) for row in rows]


def _conditions(where: AuditFilter) -> list[ColumnElement[bool]]:
    a = audit_event.c
    conditions: list[ColumnElement[bool]] = []
    if where.since is not None:
        conditions.append(a.recorded >= where.since)
    if where.until is not None:
        conditions.append(a.recorded < where.until)
    if where.agents:
        conditions.append(or_(a.agent.in_(where.agents), a.client_id.in_(where.agents)))
    if where.entities:
        conditions.append(
            or_(
                *(
                    (a.entity_type == t) & (a.entity_id == i) if i else a.entity_type == t
                    for t, i in where.entities
                )
            )
        )
    if where.patients:
        conditions.append(a.patient_id.in_(where.patients))
    if where.subtypes:
        conditions.append(a.subtype.in_(where.subtypes))
    if where.actions:
        conditions.append(a.action.in_(where.actions))
    if where.outcomes:
        conditions.append(a.outcome.in_(where.outcomes))
    return conditions


async def purge_before(conn: AsyncConnection, cutoff: datetime) -> int:
    """Delete the records older than `cutoff` (the retention purge); return how many."""
    result = await conn.execute(delete(audit_event).where(audit_event.c.recorded < cutoff))
    return result.rowcount
