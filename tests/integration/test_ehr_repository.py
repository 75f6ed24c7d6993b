"""The EHR sync repository's queue rules, on real PostgreSQL (docs/ehr-sync.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.schema import ehr_push_item
from ipt_core.ehr import repository as repo
from ipt_core.ehr.endpoints import parse_endpoints

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}


async def _two_endpoints(conn: AsyncConnection) -> None:
    entries = [
        {
            "name": name,
            "base_url": "https://ehr.example.org/fhir",
            "auth": {"type": "none"},
            "patient_identifier_system": "urn:mrn",
        }
        for name in ("one", "two")
    ]
    await repo.sync_endpoints(conn, parse_endpoints({"endpoints": entries}, {}))


async def _enqueue(conn: AsyncConnection, now: datetime, exclude: tuple[str, ...] = ()) -> None:
    await repo.enqueue_push(
        conn,
        kind="resource",
        resource_type="Observation",
        resource_id="o1",
        push_type="Observation",
        now=now,
        exclude=exclude,
    )


async def _claim(conn: AsyncConnection, endpoint: str, now: datetime) -> list[repo.PushItem]:
    return await repo.claim_push_items(conn, endpoint, now, timedelta(minutes=1), 10)


async def test_enqueue_skips_excluded_endpoints_and_coalesces(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await _two_endpoints(conn)
        await _enqueue(conn, NOW, exclude=("two",))
        await _enqueue(conn, NOW + timedelta(seconds=1))
        [item] = await _claim(conn, "one", NOW + timedelta(seconds=2))
        assert (item.generation, item.enqueued_at) == (2, NOW)
        [other] = await _claim(conn, "two", NOW + timedelta(seconds=2))
        assert other.generation == 1
        assert await _claim(conn, "one", NOW + timedelta(seconds=2)) == []  # leased


async def test_a_write_during_the_push_wins_over_its_dead_letter(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await _two_endpoints(conn)
        await _enqueue(conn, NOW)
        [item] = await _claim(conn, "one", NOW)
        await _enqueue(conn, NOW + timedelta(seconds=1))  # a newer write: generation 2
        await repo.dead_letter(conn, item, "rejected: http-422", OUTCOME, NOW)
        assert await repo.dead_letters(conn, "one") == []
        row = (await conn.execute(_row("one"))).one()
        assert (row.status, row.dead_at, row.no_outcome, row.attempts) == ("pending", None, True, 1)


async def test_a_dead_letter_comes_back_pending_on_a_new_write(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await _two_endpoints(conn)
        await _enqueue(conn, NOW)
        [item] = await _claim(conn, "one", NOW)
        await repo.dead_letter(conn, item, "x" * 500, OUTCOME, NOW)
        [letter] = await repo.dead_letters(conn, "one")
        assert (letter.operation_outcome, letter.dead_at) == (OUTCOME, NOW)
        assert letter.last_error == "x" * 200
        later = NOW + timedelta(hours=1)
        await _enqueue(conn, later)
        row = (await conn.execute(_row("one"))).one()
        assert (row.status, row.attempts, row.due_at, row.enqueued_at) == (
            "pending",
            0,
            later,
            later,
        )
        assert (row.no_outcome, row.dead_at) == (True, None)
        assert await repo.queue_counts(conn, "one") == (1, 0, later)


def _row(endpoint: str) -> Select[Any]:
    """The endpoint's item, and whether its outcome is SQL NULL (JSON null reads as None too)."""
    p = ehr_push_item
    no_outcome = p.c.operation_outcome.is_(None).label("no_outcome")
    return select(p, no_outcome).where(p.c.endpoint == endpoint)
