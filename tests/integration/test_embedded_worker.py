"""`ipt run`'s worker loops run in a child process of the API's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.provision import Database
from tests.support.api import api_settings
from tests.support.waiting import poll_until

_ROOT = Path(__file__).resolve().parents[2]


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
async def _api_with_worker(db: AsyncEngine) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The API as `ipt run` has it, its worker loops beside it, and a client of it."""
    application = create_app(api_settings(run_worker=True), database=Database(db))
    async with (
        LifespanManager(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://testserver"
        ) as http,
    ):
        yield application, http


async def test_with_the_worker_in_the_api_a_fhir_write_reaches_the_feed(db: AsyncEngine) -> None:
    async with _api_with_worker(db) as (_, http):
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
    async with _api_with_worker(db) as (_, http):
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


async def test_the_worker_processes_end_with_the_app(db: AsyncEngine) -> None:
    settings = api_settings(run_worker=True, run_worker_processes=2)
    application = create_app(settings, database=Database(db))
    async with LifespanManager(application):
        pids = [worker.pid for worker in application.state.workers]
        assert len(set(pids)) == 2
        assert all(_alive(pid) for pid in pids)
    assert not any(_alive(pid) for pid in pids)  # stopped and reaped, no zombie left either


async def test_a_worker_process_that_dies_is_logged_at_once_and_started_again(
    db: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    async with _api_with_worker(db) as (application, http):
        worker_process = application.state.workers[0]
        first = worker_process.pid
        os.kill(first, signal.SIGKILL)
        await poll_until(lambda: "the worker process ended (exit code -9)" in caplog.text)
        await poll_until(lambda: worker_process.pid not in (None, first), within_s=10)
        created = await http.post("/fhir/Patient", json={"resourceType": "Patient"})
        page = (await http.get("/ipt/v1/events", params={"wait": 10})).json()
    assert [e["data"]["id"] for e in page["events"]] == [created.json()["id"]]


def test_the_worker_process_stops_when_the_api_process_is_killed(db: AsyncEngine) -> None:
    # SIGKILL leaves the API no time to stop its child: the child watches its parent.
    url = db.url.render_as_string(hide_password=False)
    script = (
        "import sys, time\n"
        "from ipt_api.worker import start_worker_processes\n"
        "from tests.support.api import api_settings\n"
        "import asyncio\n"
        "async def main():\n"
        "    settings = api_settings()\n"
        "    [worker] = start_worker_processes(\n"
        "        sys.argv[1], 1, settings=settings, ehr_endpoints=[]\n"
        "    )\n"
        "    print(worker.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    api = subprocess.Popen(
        [sys.executable, "-c", script, url], stdout=subprocess.PIPE, text=True, cwd=_ROOT
    )
    try:
        assert api.stdout is not None
        child = int(api.stdout.readline())
        time.sleep(2)  # the child is running its loops
        assert _alive(child)
        api.kill()
        api.wait()
        deadline = time.monotonic() + 15
        while _alive(child):
            assert time.monotonic() < deadline, "the worker process outlived the API's"
            time.sleep(0.1)
    finally:
        api.kill()
        api.wait()
        api.stdout.close()  # type: ignore[union-attr]


def _alive(pid: int | None) -> bool:
    """Whether process `pid` exists and has not ended (a zombie has ended)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
