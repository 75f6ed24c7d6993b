"""The database in states a failover or overload puts it in, made real on an own database:
read-only, statements timing out, the connection lost during COMMIT. Each answers 503."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.engine import create_engine
from ipt_core.db.provision import Database
from tests.chaos.support import ChaosDatabase, chaos_database
from tests.support.api import api_settings
from tests.support.database import database_name

pytestmark = pytest.mark.chaos

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[ChaosDatabase]:
    async with chaos_database() as created:
        yield created


@pytest.fixture
async def http(database: ChaosDatabase) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(database.engine) as client:
        yield client


@asynccontextmanager
async def _client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API served on `engine`."""
    app = create_app(api_settings(), database=Database(engine))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def patient() -> dict[str, Any]:
    value = uuid.uuid4().hex
    return {"resourceType": "Patient", "identifier": [{"system": "urn:ipt:t", "value": value}]}


async def _set(database: ChaosDatabase, setting: str) -> None:
    """`ALTER DATABASE` for new sessions, and drop the pooled ones so the next request sees it."""
    name = database_name(database.url)
    async with database.engine.connect() as conn:
        await conn.execute(text("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"))
        await conn.commit()
        await conn.execute(text(f'ALTER DATABASE "{name}" {setting}'))
        await conn.commit()
    await database.engine.dispose()


def assert_unavailable(response: httpx.Response, words: str, retry_after: str) -> str:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == retry_after
    (issue,) = response.json()["issue"]
    assert issue["code"] == "transient"
    assert words in issue["diagnostics"]
    return str(issue["diagnostics"])


async def test_a_read_only_database_answers_writes_503_and_still_serves_reads(
    database: ChaosDatabase, http: httpx.AsyncClient
) -> None:
    created = await http.post("/fhir/Patient", json=patient(), headers=FHIR)
    assert created.status_code == 201
    await _set(database, "SET default_transaction_read_only = on")  # a standby after failover
    try:
        refused = await http.post("/fhir/Patient", json=patient(), headers=FHIR)
        read = await http.get(f"/fhir/Patient/{created.json()['id']}")
    finally:
        await _set(database, "RESET default_transaction_read_only")
    assert_unavailable(refused, "read-only", "5")
    assert read.status_code == 200
    assert (await http.post("/fhir/Patient", json=patient(), headers=FHIR)).status_code == 201


async def test_a_statement_timeout_answers_503(
    database: ChaosDatabase, http: httpx.AsyncClient
) -> None:
    await _set(database, "SET statement_timeout = '300ms'")
    try:
        async with database.engine.connect() as blocker:  # a long maintenance lock
            await blocker.execute(text("SET statement_timeout = 0"))
            await blocker.execute(text("LOCK TABLE resource IN ACCESS EXCLUSIVE MODE"))
            response = await http.get("/fhir/Patient")
            await blocker.rollback()
    finally:
        await _set(database, "RESET statement_timeout")
    assert_unavailable(response, "did not answer in time", "5")


# A create is one statement, atomic on its own, without a BEGIN or a COMMIT: the connection is
# lost while that statement runs. A PUT (an update, or a create with the client's id) runs in a
# transaction: the connection is lost during its COMMIT. Either way the write may be stored.
@pytest.mark.parametrize(
    ("method", "path", "ending"),
    [
        ("POST", "/fhir/Patient", "WITH %"),
        ("PUT", "/fhir/Patient/{id}", "COMMIT%"),
    ],
    ids=["atomic-create", "commit"],
)
async def test_a_connection_lost_as_the_write_commits_says_it_may_be_stored(
    database: ChaosDatabase, http: httpx.AsyncClient, method: str, path: str, ending: str
) -> None:
    # A deferred trigger makes the commit itself take a while; the backend is ended during it.
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON resource "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )
        )
    body = {**patient(), "id": uuid.uuid4().hex}
    try:
        write = asyncio.create_task(
            http.request(method, path.format(id=body["id"]), json=body, headers=FHIR)
        )
        await _terminate_while(database.engine, ending)
        response = await write
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER slow_commit ON resource"))
            await conn.execute(text("DROP FUNCTION slow_commit()"))
    diagnostics = assert_unavailable(response, "may or may not have been stored", "5")
    assert "before retrying" in diagnostics


async def _terminate_while(engine: AsyncEngine, query: str) -> None:
    """End the backend of the first other session seen running a statement like `query`."""
    async with engine.connect() as conn:
        for _ in range(200):
            ended = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE query ILIKE :query AND state = 'active' AND pid <> pg_backend_pid()"
                ),
                {"query": query},
            )
            await conn.commit()
            if ended:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"no statement like {query!r} to interrupt was seen")


async def test_pooled_connections_closed_by_the_server_are_replaced_at_checkout(
    database: ChaosDatabase, http: httpx.AsyncClient
) -> None:
    created = await http.post("/fhir/Patient", json=patient(), headers=FHIR)
    held = [await database.engine.connect() for _ in range(3)]  # fill the pool
    for conn in held:
        await conn.close()
    name = database_name(database.url)
    async with database.engine.connect() as conn:
        ended = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": name},
        )
    assert int(ended or 0) >= 2
    await asyncio.sleep(0.2)  # the sockets' closing reaches asyncpg
    statuses = [(await http.get(f"/fhir/Patient/{created.json()['id']}")).status_code]
    statuses += [(await http.get("/fhir/Patient")).status_code for _ in range(4)]
    assert statuses == [200] * 5  # no request met a dead connection


# A search and a read by id take a connection of the read pool, which the engine makes
# (ipt_core/db/read_pool.py): a refused connection is a 503 on both paths.
@pytest.mark.parametrize("path", ["/fhir/Patient", "/fhir/Patient/nobody"])
async def test_too_many_connections_answers_503(database: ChaosDatabase, path: str) -> None:
    if database.cluster is None:
        pytest.skip("needs a server where a new role may log in without a password (embedded)")
    role = f"ipt_chaos_{uuid.uuid4().hex[:8]}"
    async with database.engine.connect() as conn:  # a role already at its connection limit
        await conn.execute(text(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0'))
        await conn.commit()
    limited = create_engine(str(make_url(database.url).set(username=role)), pool_size=1)
    try:
        async with _client(limited) as client:
            response = await client.get(path)
    finally:
        await limited.dispose()
        async with database.engine.connect() as conn:
            await conn.execute(text(f'DROP ROLE "{role}"'))
            await conn.commit()
    assert_unavailable(response, "overloaded", "2")


async def test_a_request_that_waits_in_vain_for_a_pooled_connection_answers_503(
    database: ChaosDatabase,
) -> None:
    # The pool has no overflow (ipt_core.db.engine): a request that finds every connection
    # busy queues for one, and gives up with a 503, never a 500, when none comes free.
    small = create_engine(database.url, pool_size=1, pool_timeout_s=0.3)
    try:
        async with _client(small) as client:
            async with small.connect():  # the pool's only connection, held
                waited = await client.get("/fhir/Patient/nobody")
            served = await client.get("/fhir/Patient/nobody")
    finally:
        await small.dispose()
    assert_unavailable(waited, "overloaded", "2")
    assert served.status_code == 404  # the connection came back: served again
