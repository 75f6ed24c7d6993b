"""The write statement's index rows: a create adds them, an update replaces them.

Writes whose every row is a version 1 run a statement without the deletion of old index rows,
and a statement inserts only into the index tables its writes have rows for
(`ipt_core/fhir/_writes.py`); these tests fail if the creates' statement serves an update, if
a creation that lost its race adds rows, or if an update whose new version has no rows for a
table keeps the old version's rows there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.schema import search_date, search_token
from ipt_core.fhir._versions import definition_or_404, new_version
from ipt_core.fhir._writes import write_rows
from ipt_core.fhir.model import ResourcePut, WriteCause
from ipt_core.fhir.store import ResourceStore


def _patient(gender: str, id_: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "gender": gender}
    return body if id_ is None else {**body, "id": id_}


async def _genders(conn: AsyncConnection, id_: str) -> list[str]:
    rows = await conn.execute(
        select(search_token.c.code).where(
            search_token.c.resource_type == "Patient",
            search_token.c.resource_id == id_,
            search_token.c.param == "gender",
        )
    )
    return sorted(row.code for row in rows)


async def test_a_set_of_a_create_and_an_update_replaces_only_the_updated_rows(
    db: AsyncEngine,
) -> None:
    async with db.begin() as conn:
        kept = (await ResourceStore(conn).create("Patient", _patient("male"))).stored.id
    async with db.begin() as conn:
        store = ResourceStore(conn)
        await store.put_many(
            [
                ResourcePut("Patient", "index-rows-new", _patient("other"), create=True),
                ResourcePut("Patient", kept, _patient("female", kept), if_match=1),
            ]
        )
        assert await _genders(conn, kept) == ["female"]  # "male" deleted with version 1
        assert await _genders(conn, "index-rows-new") == ["other"]


async def test_a_creation_that_lost_its_race_adds_no_index_rows(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        winner = (await ResourceStore(conn).create("Patient", _patient("male"))).stored.id
        row, _ = new_version(
            definition_or_404("Patient"),
            winner,
            _patient("female", winner),
            None,
            datetime.now(UTC),
            WriteCause.CLIENT,
        )
        assert row.stored.version_id == 1
        assert await write_rows(conn, [row]) == set()
        assert await _genders(conn, winner) == ["male"]


async def test_an_update_without_rows_for_a_table_deletes_its_old_rows(db: AsyncEngine) -> None:
    born = {**_patient("male"), "birthDate": "1990-02-03"}
    async with db.begin() as conn:
        store = ResourceStore(conn)
        id_ = (await store.create("Patient", born)).stored.id
        assert await _birth_dates(conn, id_) == 1
        # The new version has token rows (gender) but none for search_date.
        await store.update("Patient", id_, _patient("female", id_), if_match=1)
        assert await _birth_dates(conn, id_) == 0
        assert await _genders(conn, id_) == ["female"]


async def test_writes_with_rows_for_different_tables_each_get_theirs(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        store = ResourceStore(conn)
        plain = (await store.create("Patient", _patient("other"))).stored.id
        born = {**_patient("male"), "birthDate": "1990-02-03"}
        dated = (await store.create("Patient", born)).stored.id
        assert (await _birth_dates(conn, plain), await _birth_dates(conn, dated)) == (0, 1)
        assert await _genders(conn, plain) == ["other"]


async def _birth_dates(conn: AsyncConnection, id_: str) -> int:
    rows = await conn.execute(
        select(search_date.c.low).where(
            search_date.c.resource_type == "Patient", search_date.c.resource_id == id_
        )
    )
    return len(rows.all())
