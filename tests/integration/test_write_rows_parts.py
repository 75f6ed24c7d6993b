"""Listeners' rows in the write's own statement (`ipt_core.db.parts`).

A write of one resource carries the outbox's event (and, in the API, the audit record) in its
statement: one round trip instead of three. These tests fail if the rows ride apart again,
or if a write that did not happen leaves rows or spends a sequence number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_api.audit.listener import AuditWriteListener
from ipt_api.audit.trail import AuditTrail, open_trail
from ipt_core.db.fixed import FixedStatement
from ipt_core.events import OutboxListener
from ipt_core.fhir.model import Change
from ipt_core.fhir.store import ResourceStore

PATIENT = {"resourceType": "Patient", "gender": "female"}


class Told:
    """A listener without the rows form: told after the write, as before."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, int]] = []

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        self.changes.append((change.action, change.stored.version_id))


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every fixed statement run, in order."""
    seen: list[str] = []
    execute = FixedStatement.execute

    async def counted(
        self: FixedStatement, conn: AsyncConnection, params: Mapping[str, Any]
    ) -> Sequence[Mapping[Any, Any]]:
        seen.append(self.sql)
        return await execute(self, conn, params)

    monkeypatch.setattr(FixedStatement, "execute", counted)
    return seen


async def _events(db: AsyncEngine, key: str) -> list[tuple[str, str, int]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT payload FROM outbox WHERE aggregateid = :key ORDER BY seq"), {"key": key}
        )
        return [
            (data["action"], data["versionId"], int(r.payload["sequence"]))
            for r in rows
            if (data := r.payload["data"])
        ]


async def test_a_create_update_and_delete_are_one_statement_each_with_their_events(
    db: AsyncEngine, statements: list[str]
) -> None:
    told = Told()
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=[OutboxListener(), told])
        id_ = (await store.create("Patient", PATIENT)).stored.id
        assert len(statements) == 1
        assert "INSERT INTO outbox" in statements[0]
        await store.update("Patient", id_, {**PATIENT, "id": id_, "gender": "male"})
        await store.delete("Patient", id_)
    writes = [sql for sql in statements if "INSERT INTO resource " in sql]
    assert len(writes) == 3
    assert all("INSERT INTO outbox" in sql for sql in writes)
    assert told.changes == [("create", 1), ("update", 2), ("delete", 3)]
    assert await _events(db, f"Patient/{id_}") == [
        ("create", "1", 1),
        ("update", "2", 2),
        ("delete", "3", 3),
    ]


async def test_a_creation_that_lost_its_race_leaves_no_event_and_no_gap(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=[OutboxListener()])
        id_ = (await store.create("Patient", PATIENT)).stored.id
        # As a concurrent creator of the same id finds it: its version 1 is not written, and
        # it becomes an update of the winner's version.
        result = await store.create("Patient", {**PATIENT, "gender": "male"}, new_id=id_)
    assert result.stored.version_id == 2
    assert await _events(db, f"Patient/{id_}") == [("create", "1", 1), ("update", "2", 2)]


async def test_a_later_listener_that_refuses_takes_the_rows_back(db: AsyncEngine) -> None:
    class Refuse:
        async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        async with db.begin() as conn:
            await ResourceStore(conn, listeners=[OutboxListener(), Refuse()]).create(
                "Patient", PATIENT
            )
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox")) == 0
        assert await conn.scalar(text("SELECT count(*) FROM resource")) == 0


async def test_the_audit_record_rides_along_and_counts_only_once_the_write_is_complete(
    db: AsyncEngine,
) -> None:
    class Refuse:
        async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
            raise RuntimeError("refused")

    trail = AuditTrail(source_address=None, method="POST")
    with open_trail(trail):
        async with db.begin() as conn:
            with pytest.raises(RuntimeError, match="refused"):
                async with conn.begin_nested():  # a batch Bundle's entry
                    await ResourceStore(conn, listeners=[AuditWriteListener(), Refuse()]).create(
                        "Patient", PATIENT
                    )
            # Refused after the statement: the request's own note of the write still counts.
            assert trail.written_types == set()
            await ResourceStore(conn, listeners=[AuditWriteListener()]).create("Patient", PATIENT)
            assert trail.written_types == {"Patient"}
    async with db.connect() as conn:
        rows = await conn.execute(text("SELECT action, outcome_status FROM audit_event"))
        assert [tuple(row) for row in rows] == [("C", 201)]
