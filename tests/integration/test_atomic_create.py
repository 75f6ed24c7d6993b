"""A create on a connection in autocommit (`ResourceStore.create`, the API's POST).

Its listeners all of the rows form, or not concerned by it, a create is one statement, atomic
on its own: no BEGIN and no COMMIT. A listener it concerns (with statements of its own, or a
refusal), a conditional create or a lost creation race run in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.db.driver import autocommit_driver
from ipt_core.fhir.errors import NotAuthorized
from ipt_core.fhir.model import Change
from ipt_core.fhir.store import ResourceStore, WriteListener
from tests.support.database import query_scalar


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:ipt:test:atomic", "value": uuid.uuid4().hex}],
    }


class _Recording:
    """Concerned by Patients (or by nothing): records what it is told, runs a statement."""

    def __init__(self, *, concerned: bool = True, refuse: bool = False) -> None:
        self.concerned = concerned
        self.refuse = refuse
        self.told: list[tuple[str, bool]] = []  # (id, in a transaction)

    def concerns(self, change: Change) -> bool:
        return self.concerned and change.stored.resource_type == "Patient"

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        driver = await autocommit_driver(conn)
        self.told.append((change.stored.id, driver is not None and driver.is_in_transaction()))
        await conn.execute(text("SELECT 1"))
        if self.refuse:
            raise NotAuthorized("refused by the test's listener")


@asynccontextmanager
async def _store(
    db: AsyncEngine, *extra: WriteListener
) -> AsyncIterator[tuple[ResourceStore, list[str]]]:
    """A store on a connection in autocommit, and the statements sent on it."""
    async with db.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        driver = await autocommit_driver(conn)
        assert driver is not None
        sent: list[str] = []
        driver.add_query_logger(lambda record: sent.append(record.query.strip()))
        yield ResourceStore(conn, listeners=write_listeners(*extra)), sent
        await _logged()


async def _logged() -> None:
    """Let asyncpg's query loggers run: it calls them soon after a statement, not in it."""
    await asyncio.sleep(0)


def _transaction_ends(sent: Sequence[str]) -> list[str]:
    words = [q.split()[0].rstrip(";").upper() for q in sent]
    return [word for word in words if word in {"BEGIN", "COMMIT"}]


async def _stored(db: AsyncEngine, id_: str) -> tuple[int, int]:
    """The resource's current rows and its `fhir.resource.changed` events."""
    rows = await query_scalar(
        db, "SELECT count(*) FROM resource WHERE resource_type = 'Patient' AND id = :id", id=id_
    )
    events = await query_scalar(
        db, "SELECT count(*) FROM outbox WHERE payload->'data'->>'id' = :id", id=id_
    )
    return int(rows), int(events)


async def test_a_create_of_rows_only_is_one_statement_with_its_event(db: AsyncEngine) -> None:
    quiet = _Recording(concerned=False)
    async with _store(db, quiet) as (store, sent):
        await store.create("Patient", _patient())  # asyncpg prepares the statement: its queries
        await _logged()
        sent.clear()
        result = await store.create("Patient", _patient())
    assert result.created
    assert len(sent) == 1, sent  # the write's statement alone: no BEGIN, no COMMIT
    assert quiet.told == []  # not concerned: not told
    assert await _stored(db, result.stored.id) == (1, 1)


async def test_a_concerned_listener_is_told_in_the_creates_own_transaction(
    db: AsyncEngine,
) -> None:
    listener = _Recording()
    async with _store(db, listener) as (store, sent):
        result = await store.create("Patient", _patient())
    assert listener.told == [(result.stored.id, True)]
    assert _transaction_ends(sent) == ["BEGIN", "COMMIT"]
    assert await _stored(db, result.stored.id) == (1, 1)


async def test_a_refusal_after_the_write_leaves_nothing_stored(db: AsyncEngine) -> None:
    listener = _Recording(refuse=True)
    async with _store(db, listener) as (store, _):
        with pytest.raises(NotAuthorized):
            await store.create("Patient", _patient(), new_id=(id_ := uuid.uuid4().hex))
        driver = await autocommit_driver(store.conn)
        assert driver is not None
        assert not driver.is_in_transaction()  # rolled back, not left open
    assert listener.told == [(id_, True)]
    assert await _stored(db, id_) == (0, 0)  # the row and its event rolled back together


async def test_a_lost_creation_race_becomes_an_update_in_a_transaction(db: AsyncEngine) -> None:
    async with _store(db) as (store, sent):
        first = await store.create("Patient", _patient())
        await _logged()
        sent.clear()
        again = await store.create("Patient", _patient(), new_id=first.stored.id)
    assert (again.stored.id, again.stored.version_id) == (first.stored.id, 2)
    assert _transaction_ends(sent) == ["BEGIN", "COMMIT"]
    assert await _stored(db, first.stored.id) == (1, 2)


async def test_a_conditional_create_runs_in_a_transaction(db: AsyncEngine) -> None:
    patient = _patient()
    criteria = f"identifier=urn:ipt:test:atomic|{patient['identifier'][0]['value']}"
    async with _store(db) as (store, sent):
        made = await store.create("Patient", patient, if_none_exist=criteria)
        found = await store.create("Patient", patient, if_none_exist=criteria)
    assert made.created
    assert not found.created
    assert found.stored.id == made.stored.id
    assert _transaction_ends(sent) == ["BEGIN", "COMMIT"] * 2
