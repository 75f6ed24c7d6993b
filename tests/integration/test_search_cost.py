"""The cost of one request is bounded: parameter and value caps, a statement timeout, and the
query cancelled in PostgreSQL when the client goes away (README, "Input limits").

A lock held by the test makes a request wait in PostgreSQL for as long as the test wants, so
"slow" is deterministic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.provision import Database
from tests.support.api import api_settings, served
from tests.support.database import query_scalar
from tests.support.waiting import poll_until

FHIR = {"Content-Type": "application/fhir+json"}


async def test_too_many_parameters_or_values_are_400(client: httpx.AsyncClient) -> None:
    many = "&".join(f"name=n{i}" for i in range(41))
    response = await client.get(f"/fhir/Patient?{many}")
    assert response.status_code == 400, response.text
    assert "at most 40 parameters" in response.json()["issue"][0]["diagnostics"]
    values = ",".join(f"v{i}" for i in range(201))
    response = await client.get(f"/fhir/Patient?identifier={values}")
    assert response.status_code == 400, response.text
    assert "at most 200 values" in response.json()["issue"][0]["diagnostics"]
    form = await client.post(
        "/fhir/Patient/_search",
        content=many.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 400
    conditional = await client.put(
        f"/fhir/Patient?{many}", json={"resourceType": "Patient"}, headers=FHIR
    )
    assert conditional.status_code == 400
    within = "&".join(f"name=n{i}" for i in range(40))
    assert (await client.get(f"/fhir/Patient?{within}")).status_code == 200


async def test_the_limits_are_settings(db: AsyncEngine) -> None:
    app = create_app(api_settings(max_search_params=2, max_search_values=3), database=Database(db))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.get("/fhir/Patient?name=a&name=b")).status_code == 200
            assert (await http.get("/fhir/Patient?name=a&name=b&name=c")).status_code == 400
            assert (await http.get("/fhir/Patient?name=a,b&gender=male,female")).status_code == 400
            entry = {"request": {"method": "GET", "url": "Patient?name=a&name=b&name=c"}}
            bundle = {"resourceType": "Bundle", "type": "batch", "entry": [entry]}
            answer = (await http.post("/fhir", json=bundle, headers=FHIR)).json()
            assert answer["entry"][0]["response"]["status"].startswith("400")


@pytest.fixture
async def locked(db: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction holding an exclusive lock on the resource table until the test ends."""
    async with db.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(text("LOCK TABLE resource IN ACCESS EXCLUSIVE MODE"))
        try:
            yield conn
        finally:
            await transaction.rollback()


async def waiting_queries(db: AsyncEngine) -> int:
    """Statements of other sessions of this database waiting for a lock."""
    count = await query_scalar(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
    )
    return int(count or 0)


async def test_a_statement_over_the_timeout_is_a_503(
    db: AsyncEngine, database_url: str, locked: AsyncConnection
) -> None:
    settings = api_settings(
        database_url=database_url.replace("+asyncpg", ""), statement_timeout_ms=300
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            started = time.monotonic()
            response = await http.get("/fhir/Patient?name=slow")
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert "statement timeout" in response.json()["issue"][0]["diagnostics"]
    assert time.monotonic() - started < 5
    assert await waiting_queries(db) == 0


async def test_a_query_is_cancelled_when_the_client_leaves(
    db: AsyncEngine, database_url: str, locked: AsyncConnection
) -> None:
    settings = api_settings(database_url=database_url.replace("+asyncpg", ""))
    with served(create_app(settings)) as port:
        url = f"http://127.0.0.1:{port}/fhir/Patient?name=slow"
        async with httpx.AsyncClient() as http:
            request = asyncio.create_task(http.get(url, timeout=30))
            await poll_until(lambda: _some_wait(db), within_s=10, what="the search to wait")
            request.cancel()  # the client goes away: its connection is closed
            with pytest.raises(asyncio.CancelledError):
                await request
        # The lock is still held: only a cancelled statement stops waiting.
        await poll_until(lambda: _none_wait(db), within_s=10, what="PostgreSQL to cancel it")
        # Audited as the client's leaving (499), not as a failure of the server (500).
        searched = "SELECT count(*) FROM audit_event WHERE action = 'E'"
        await poll_until(lambda: query_scalar(db, searched), within_s=10, what="its audit record")
    statuses = "SELECT array_agg(outcome_status) FROM audit_event WHERE action = 'E'"
    assert await query_scalar(db, statuses) == [499]


async def _some_wait(db: AsyncEngine) -> bool:
    return await waiting_queries(db) > 0


async def _none_wait(db: AsyncEngine) -> bool:
    return await waiting_queries(db) == 0
