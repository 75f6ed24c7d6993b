"""The primary-key reads: on the API's autocommit connections they run on the asyncpg driver,
inside a transaction through SQLAlchemy Core; both must return exactly the same thing."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.provision import Database
from ipt_core.fhir import _repository as rows
from ipt_core.fhir.model import StoredResource
from ipt_core.fhir.store import ResourceStore

_Keys = list[tuple[str, str, int]]


async def _reads(conn: AsyncConnection, keys: _Keys) -> list[StoredResource | None]:
    found = []
    for type_, id_, version in keys:
        found.append(await rows.current(conn, type_, id_))
        found.append(await rows.version(conn, type_, id_, version))
    return found


async def test_the_driver_and_core_reads_return_the_same_rows(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        store = ResourceStore(conn)
        kept = (await store.create("Patient", {"resourceType": "Patient", "gender": "male"})).stored
        gone = (await store.create("Patient", {"resourceType": "Patient"})).stored
        body = {"resourceType": "Patient", "id": kept.id, "gender": "female"}
        await store.update("Patient", kept.id, body)
        await store.delete("Patient", gone.id)
    keys: _Keys = [
        ("Patient", kept.id, 1),
        ("Patient", kept.id, 2),
        ("Patient", gone.id, 2),  # the deletion
        ("Patient", uuid.uuid4().hex, 1),  # never written
    ]
    async with Database(db).reads.connect() as autocommit:  # as the API's reads
        dbapi = (await autocommit.get_raw_connection()).dbapi_connection
        assert dbapi is not None
        assert dbapi.autocommit  # so `_one` takes the driver's path
        on_driver = await _reads(autocommit, keys)
    async with db.begin() as transaction:
        on_core = await _reads(transaction, keys)
    assert on_driver == on_core
    assert [r is None for r in on_core] == [False] * 6 + [True, True]
    assert [(r.version_id, r.deleted) for r in on_core if r is not None] == [
        (2, False),
        (1, False),
        (2, False),
        (2, False),
        (2, True),
        (2, True),
    ]
