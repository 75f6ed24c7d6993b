"""`ResourceStore.update_many`: set-based If-Match writes (the status engine's write-backs)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.schema import outbox, resource_version, search_token
from ipt_core.events import OutboxListener
from ipt_core.fhir.errors import InvalidResource
from ipt_core.fhir.model import Change, VersionedWrite, WriteCause
from ipt_core.fhir.store import ResourceStore


def _patient(gender: str, id_: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "gender": gender}
    return body if id_ is None else {**body, "id": id_}


class BatchRecorder:
    """A listener with the batch form: remembers each batch it was told."""

    def __init__(self) -> None:
        """No batch yet."""
        self.batches: list[list[tuple[str, str, WriteCause]]] = []

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """The single form: a batch of one."""
        await self.resources_written(conn, [change])

    async def resources_written(self, conn: AsyncConnection, changes: Sequence[Change]) -> None:
        """Remember the batch."""
        self.batches.append([(c.action, c.stored.id, c.cause) for c in changes])


class Refuser:
    """A listener (single form only) that refuses the write of one id."""

    def __init__(self, refused: str) -> None:
        """Refuse writes of `refused`."""
        self.refused = refused

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """Abort the write when it is the refused resource."""
        if change.stored.id == self.refused:
            raise RuntimeError("refused")


async def _create(db: AsyncEngine, count: int) -> list[str]:
    async with db.begin() as conn:
        store = ResourceStore(conn)
        return [(await store.create("Patient", _patient("female"))).stored.id for _ in range(count)]


async def _count(db: AsyncEngine, table: Any) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_writes_current_versions_and_skips_stale_or_deleted(db: AsyncEngine) -> None:
    fresh, stale, gone = await _create(db, 3)
    async with db.begin() as conn:
        store = ResourceStore(conn)
        await store.update("Patient", stale, _patient("other", stale))  # now at version 2
        await store.delete("Patient", gone)
    recorder = BatchRecorder()
    writes = [
        VersionedWrite("Patient", stale, _patient("male", stale), 1),
        VersionedWrite("Patient", fresh, _patient("male", fresh), 1),
        VersionedWrite("Patient", gone, _patient("male", gone), 1),
        VersionedWrite("Patient", "never-written", _patient("male", "never-written"), 1),
    ]
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=[recorder])
        results = await store.update_many(writes, cause=WriteCause.STATUS_WRITEBACK)
    assert [r is None for r in results] == [True, False, True, True]
    written = results[1]
    assert written is not None
    assert (written.stored.version_id, written.created) == (2, False)
    assert recorder.batches == [[("update", fresh, WriteCause.STATUS_WRITEBACK)]]
    async with db.connect() as conn:
        store = ResourceStore(conn)
        assert '"male"' in ((await store.read("Patient", fresh)).content or "")
        assert (await store.read("Patient", stale)).version_id == 2
        genders = await conn.scalars(
            select(search_token.c.code).where(
                search_token.c.resource_id == fresh, search_token.c.param == "gender"
            )
        )
        assert list(genders) == ["male"]  # the old index row was replaced
        versions = await conn.scalar(
            select(func.count()).select_from(resource_version).where(resource_version.c.id == fresh)
        )
        assert versions == 2


async def test_a_write_made_meanwhile_makes_the_batch_skip_it(db: AsyncEngine) -> None:
    (patient,) = await _create(db, 1)
    async with db.connect() as first, db.connect() as second:
        await first.begin()
        await ResourceStore(first).read("Patient", patient, for_update=True)
        await second.begin()
        batch = asyncio.create_task(
            ResourceStore(second).update_many(
                [VersionedWrite("Patient", patient, _patient("male", patient), 1)]
            )
        )
        await asyncio.sleep(0.2)
        assert not batch.done()  # it waits for the row lock
        await ResourceStore(first).update("Patient", patient, _patient("other", patient))
        await first.commit()
        assert await batch == [None]
        await second.commit()
    async with db.connect() as conn:
        current = await ResourceStore(conn).read("Patient", patient)
    assert current.version_id == 2
    assert '"other"' in (current.content or "")


async def test_an_aborted_batch_writes_nothing(db: AsyncEngine) -> None:
    ids = await _create(db, 3)
    before = await _count(db, resource_version), await _count(db, outbox)
    writes = [VersionedWrite("Patient", i, _patient("male", i), 1) for i in ids]
    async with db.connect() as conn:
        await conn.begin()
        store = ResourceStore(conn, listeners=[OutboxListener(), Refuser(ids[2])])
        with pytest.raises(RuntimeError, match="refused"):
            await store.update_many(writes)
        await conn.rollback()  # as the worker's unit of work does on any failure
    assert (await _count(db, resource_version), await _count(db, outbox)) == before
    async with db.connect() as conn:
        for id_ in ids:
            assert (await ResourceStore(conn).read("Patient", id_)).version_id == 1


async def test_every_body_is_validated_before_anything_is_written(db: AsyncEngine) -> None:
    first, second = await _create(db, 2)
    writes = [
        VersionedWrite("Patient", first, _patient("male", first), 1),
        VersionedWrite("Patient", second, _patient("bogus", second), 1),
    ]
    async with db.begin() as conn:
        with pytest.raises(InvalidResource):
            await ResourceStore(conn).update_many(writes)
        assert (await ResourceStore(conn).read("Patient", first)).version_id == 1


async def test_only_status_write_backs_skip_the_model_validation(db: AsyncEngine) -> None:
    (patient,) = await _create(db, 1)
    derived = VersionedWrite(
        "Patient", patient, _patient("male", patient), 1, derived_from_stored=True
    )
    async with db.begin() as conn:
        for cause in (WriteCause.CLIENT, WriteCause.EHR_PULL, WriteCause.SEED):
            with pytest.raises(ValueError, match="only status write-backs"):
                await ResourceStore(conn).update_many([derived], cause=cause)
        assert (await ResourceStore(conn).read("Patient", patient)).version_id == 1


async def test_a_derived_body_still_meets_the_json_rules_and_required_codes(
    db: AsyncEngine,
) -> None:
    first, second, third = await _create(db, 3)
    broken = [
        _patient("bogus", first),  # a code outside the required value set
        {**_patient("male", second), "name": [{"family": " "}]},  # a blank string
    ]
    for body in broken:
        write = VersionedWrite("Patient", body["id"], body, 1, derived_from_stored=True)
        async with db.begin() as conn:
            with pytest.raises(InvalidResource):
                await ResourceStore(conn).update_many([write], cause=WriteCause.STATUS_WRITEBACK)
    fine = VersionedWrite("Patient", third, _patient("male", third), 1, derived_from_stored=True)
    async with db.begin() as conn:
        store = ResourceStore(conn)
        (result,) = await store.update_many([fine], cause=WriteCause.STATUS_WRITEBACK)
        assert result is not None
        assert result.stored.version_id == 2
        assert '"male"' in ((await store.read("Patient", third)).content or "")


async def _index_rows(db: AsyncEngine, id_: str) -> list[tuple[str, str, str]]:
    """The Patient's token rows with their physical location (`ctid`): a rewrite moves them."""
    async with db.connect() as conn:
        rows = await conn.execute(
            select(text("ctid::text"), search_token.c.param, search_token.c.code)
            .where(search_token.c.resource_id == id_)
            .order_by(search_token.c.param)
        )
        return [tuple(row) for row in rows]


async def test_a_derived_write_keeps_index_rows_unless_it_changes_a_searchable_element(
    db: AsyncEngine,
) -> None:
    kept, reindexed, client = await _create(db, 3)
    before = {id_: await _index_rows(db, id_) for id_ in (kept, reindexed, client)}
    writes = [
        # `active` is no search parameter's: the stored index rows stay as they are.
        VersionedWrite(
            "Patient",
            kept,
            {**_patient("female", kept), "active": True},
            1,
            derived_from_stored=True,
        ),
        VersionedWrite(
            "Patient", reindexed, _patient("male", reindexed), 1, derived_from_stored=True
        ),
        # Not derived: re-indexed as every write always is.
        VersionedWrite("Patient", client, {**_patient("female", client), "active": True}, 1),
    ]
    async with db.begin() as conn:
        results = await ResourceStore(conn).update_many(writes, cause=WriteCause.STATUS_WRITEBACK)
    assert [r.stored.version_id if r else None for r in results] == [2, 2, 2]
    assert await _index_rows(db, kept) == before[kept]
    assert [(p, c) for _, p, c in await _index_rows(db, reindexed)] == [("gender", "male")]
    assert [(p, c) for _, p, c in await _index_rows(db, client)] == [("gender", "female")]
    assert await _index_rows(db, client) != before[client]  # rewritten: new row locations
    async with db.connect() as conn:
        found = await ResourceStore(conn).read("Patient", kept)
    assert '"active":true' in (found.content or "")


async def test_the_outbox_numbers_a_batch_in_order(db: AsyncEngine) -> None:
    ids = await _create(db, 3)
    writes = [VersionedWrite("Patient", i, _patient("male", i), 1) for i in ids]
    async with db.begin() as conn:
        await ResourceStore(conn, listeners=[OutboxListener(lambda _: "one")]).update_many(writes)
        await ResourceStore(conn, listeners=[OutboxListener(lambda _: "one")]).update(
            "Patient", ids[0], _patient("female", ids[0])
        )
    async with db.connect() as conn:
        rows = list(await conn.execute(select(outbox.c.payload).order_by(outbox.c.seq)))
    events = [row.payload for row in rows]
    assert [e["sequence"] for e in events] == [f"{n:020d}" for n in range(1, 5)]
    assert [e["data"]["id"] for e in events] == [*ids, ids[0]]
    assert [e["data"]["versionId"] for e in events] == ["2", "2", "2", "3"]


async def test_a_resource_twice_in_one_batch_is_refused(db: AsyncEngine) -> None:
    (patient,) = await _create(db, 1)
    write = VersionedWrite("Patient", patient, _patient("male", patient), 1)
    async with db.begin() as conn:
        with pytest.raises(ValueError, match="at most once"):
            await ResourceStore(conn).update_many([write, write])


async def test_read_many_answers_current_rows_and_locks_them(db: AsyncEngine) -> None:
    kept, changed, gone = await _create(db, 3)
    async with db.begin() as conn:
        store = ResourceStore(conn)
        await store.update("Patient", changed, _patient("other", changed))
        await store.delete("Patient", gone)
    keys = [("Patient", i) for i in (kept, changed, gone, "never-written")]
    async with db.begin() as conn:
        found = await ResourceStore(conn).read_many(keys, for_update=True)
        assert {key: (row.version_id, row.deleted) for key, row in found.items()} == {
            ("Patient", kept): (1, False),
            ("Patient", changed): (2, False),
            ("Patient", gone): (2, True),
        }
        # Held until this transaction ends: another writer of the row cannot take it.
        with pytest.raises(DBAPIError, match="lock timeout"):
            await _update_within(db, "100ms", kept)
    async with db.connect() as conn:
        unlocked = await ResourceStore(conn).read_many([("Patient", kept)])
    assert unlocked[("Patient", kept)].version_id == 1


async def _update_within(db: AsyncEngine, lock_timeout: str, id_: str) -> None:
    async with db.begin() as conn:
        await conn.execute(select(func.set_config("lock_timeout", lock_timeout, True)))
        await ResourceStore(conn).update("Patient", id_, _patient("male", id_))
