"""`ipt run`'s worker loops run on a thread of their own, beside the API's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from ipt_api import worker
from ipt_api.app import create_app
from ipt_api.worker import THREAD_NAME
from ipt_core.db.provision import Database
from tests.support.api import api_settings


def _published(url: str, resource_id: str) -> bool:
    """Whether the relay has published the event of `resource_id`'s write, asked on a
    connection of its own (the caller's event loop is blocked)."""

    async def ask() -> bool:
        conn = await asyncpg.connect(url)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT published_at IS NOT NULL FROM outbox WHERE payload->'data'->>'id' = $1",
                    resource_id,
                )
            )
        finally:
            await conn.close()

    return asyncio.run(ask())


@contextlib.asynccontextmanager
async def _api_with_worker(db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The API as `ipt run` has it, its worker loops inside, and a client of it."""
    application = create_app(api_settings(run_worker=True), database=Database(db))
    async with (
        LifespanManager(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://testserver"
        ) as http,
    ):
        yield http


async def test_with_the_worker_in_the_api_a_fhir_write_reaches_the_feed(db: AsyncEngine) -> None:
    async with _api_with_worker(db) as http:
        created = await http.post(
            "/fhir/Patient",
            json={"resourceType": "Patient", "gender": "female"},
            headers={"Content-Type": "application/fhir+json"},
        )
        page = (await http.get("/ipt/v1/events", params={"wait": 5})).json()
    patient_id = created.json()["id"]
    assert [e["data"] for e in page["events"]] == [
        {"type": "Patient", "id": patient_id, "versionId": "1", "action": "create"}
    ]


async def test_the_worker_loops_go_on_while_the_api_loop_is_busy(db: AsyncEngine) -> None:
    url = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    async with _api_with_worker(db) as http:
        created = await http.post("/fhir/Patient", json={"resourceType": "Patient"})
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        # Block the API's event loop (this test's) while the relay publishes the write's
        # event: it can only do so on a loop of its own.
        deadline = time.monotonic() + 10
        with ThreadPoolExecutor(1) as asking:
            while not asking.submit(_published, url, patient_id).result():
                assert time.monotonic() < deadline, "not published while the API loop was busy"
                time.sleep(0.05)  # noqa: ASYNC251 -- blocking the loop is the point


async def test_the_worker_thread_ends_with_the_app_and_gives_back_the_switch_interval(
    db: AsyncEngine,
) -> None:
    before = sys.getswitchinterval()
    application = create_app(api_settings(run_worker=True), database=Database(db))
    async with LifespanManager(application):
        assert THREAD_NAME in {thread.name for thread in threading.enumerate()}
        assert sys.getswitchinterval() < before
    assert THREAD_NAME not in {thread.name for thread in threading.enumerate()}
    assert sys.getswitchinterval() == before


async def test_loops_that_fail_say_so_at_once_and_their_error_ends_the_app(
    db: AsyncEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(*_: object) -> None:
        raise RuntimeError("Patient/p1 Jane Doe")  # an error whose text quotes data

    monkeypatch.setattr(worker, "run_worker_loops", failing)
    application = create_app(api_settings(run_worker=True), database=Database(db))
    with pytest.raises(RuntimeError):  # raised as the app stops
        await _run_until_logged(application, caplog, "the worker loops ended")
    assert "RuntimeError" in caplog.text
    assert "Jane" not in caplog.text


async def _run_until_logged(
    application: ASGIApp, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    """Run `application` until `text` is logged while it runs (at most 5 s), then stop it."""
    async with LifespanManager(application):
        deadline = time.monotonic() + 5
        while text not in caplog.text:
            assert time.monotonic() < deadline, f"{text!r} was not logged while running"
            await asyncio.sleep(0.01)
