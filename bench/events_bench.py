"""Event delivery: latency from FHIR write commit to webhook receipt, and relay throughput.

Latency: a throwaway embedded PostgreSQL, a real `ipt-worker` process (relay leader, webhook
publisher) and a webhook receiver (uvicorn) in its own process. Patients are created through
the FHIR store (with the default listeners, as the API writes) at a fixed rate, one
transaction each; each event's latency is its receipt time minus its write's commit time.
Throughput: a backlog of status events over many courses, published and delivered by an
in-process relay. Run: `python -m bench.events_bench [--rate R] [--seconds S] [--backlog N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.events import append_events, cloud_event
from ipt_core.events.webhooks import create_endpoint
from ipt_core.fhir.store import ResourceStore
from ipt_core.net import DestinationPolicy
from ipt_core.sealing import Keyring, new_key
from ipt_worker.publishers import DeliveryPolicy, WebhookDeliverer, WebhookFanOut
from ipt_worker.relay import EventRelay, RelayTiming

_DATA = Path(".bench") / "pg-events"
_PATIENT = {"resourceType": "Patient", "gender": "female", "birthDate": "1980-01-01"}

_SECRETS_KEYS = new_key("bench")  # seals the receiver's secret for this run only
_KEYRING = Keyring.parse(_SECRETS_KEYS)


def main() -> None:
    """Measure latency at a fixed write rate, then relay and delivery throughput."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200, help="FHIR writes per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--backlog", type=int, default=20_000, help="events, throughput phase")
    parser.add_argument("--courses", type=int, default=200, help="their courses (queues)")
    args = parser.parse_args()
    asyncio.run(_main(args.rate, args.seconds, args.backlog, args.courses))


async def _main(rate: float, seconds: float, backlog: int, courses: int) -> None:
    cluster = EmbeddedPostgres(_DATA, throwaway=True)
    cluster.stop()
    shutil.rmtree(_DATA, ignore_errors=True)
    url = cluster.start().url("postgres")
    engine = create_engine(url, pool_size=8)
    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.Process(target=_receive, args=(child,), daemon=True)
    receiver.start()
    port = parent.recv()
    try:
        await upgrade(engine)
        await _subscribe(engine, f"http://127.0.0.1:{port}/hooks")
        await _latency(engine, url, parent, rate, seconds)
        await _throughput(engine, parent, backlog, courses)
    finally:
        parent.send("stop")
        receiver.join(timeout=10)
        await engine.dispose()
        cluster.stop()


async def _subscribe(engine: AsyncEngine, url: str) -> None:
    async with engine.begin() as conn:
        await create_endpoint(
            conn,
            url=url,
            event_types=[],
            therapist_ref=None,
            organization_ref=None,
            now=datetime.now(UTC),
            keyring=_KEYRING,
        )


async def _latency(
    engine: AsyncEngine, url: str, receiver: Connection, rate: float, seconds: float
) -> None:
    worker = _start_worker(url)
    try:
        await _wait_for_leader(engine)
        committed: dict[str, float] = {}
        started = time.perf_counter()
        writes = [
            asyncio.create_task(_write_at(engine, started + n / rate, committed))
            for n in range(int(rate * seconds))
        ]
        await asyncio.gather(*writes)
        achieved = len(writes) / (time.perf_counter() - started)
        received = await _collect(receiver, set(committed), timeout_s=60)
    finally:
        worker.terminate()
        worker.wait(timeout=15)
    latencies = sorted((received[id_] - at) * 1000 for id_, at in committed.items())
    print(f"writes: {len(writes)} at {achieved:.0f}/s (target {rate:.0f}/s); all delivered")
    await _stages(engine)
    print(
        "write commit -> webhook receipt: "
        f"p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms, "
        f"max {latencies[-1]:.1f} ms"
    )


async def _stages(engine: AsyncEngine) -> None:
    """Where the time went: write -> published by the relay -> recorded delivered."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(  # a report query of the benchmark, not the service's SQL
                    "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY "
                    "extract(epoch FROM o.published_at - o.created_at)) AS published, "
                    "percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY "
                    "extract(epoch FROM d.delivered_at - o.published_at)) AS delivered "
                    "FROM outbox o JOIN webhook_delivery d ON d.event_seq = o.seq"
                )
            )
        ).one()
    print(
        "stages (p50 / p99): write -> published "
        f"{row.published[0] * 1000:.1f} / {row.published[1] * 1000:.1f} ms, "
        f"published -> delivery recorded {row.delivered[0] * 1000:.1f} / "
        f"{row.delivered[1] * 1000:.1f} ms"
    )


async def _write_at(engine: AsyncEngine, due: float, committed: dict[str, float]) -> None:
    await asyncio.sleep(max(due - time.perf_counter(), 0))
    async with engine.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners())
        result = await store.create("Patient", _PATIENT)
    committed[result.stored.id] = time.time()


def _start_worker(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "IPT_EVENT_PUBLISHERS": "webhooks",
        "IPT_OUTBOUND_ALLOW": "127.0.0.1",  # the local receiver
        "IPT_SECRETS_KEYS": _SECRETS_KEYS,
        "IPT_WEBHOOK_CONCURRENCY": "8",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ipt_worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_for_leader(engine: AsyncEngine) -> None:
    deadline = time.monotonic() + 300  # a loaded machine takes tens of seconds to import it
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            locks = await conn.scalar(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            )
        if locks:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the worker did not start leading the relay")


async def _collect(receiver: Connection, ids: set[str], *, timeout_s: float) -> dict[str, float]:
    """Ask the receiver for first-receipt times until every id in `ids` is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        receiver.send("report")
        received: dict[str, float] = await asyncio.to_thread(receiver.recv)
        if ids <= received.keys():
            return received
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ids - received.keys())} events never arrived")
        await asyncio.sleep(0.2)


async def _throughput(
    engine: AsyncEngine, receiver: Connection, backlog: int, course_count: int
) -> None:
    courses = [f"course-{n}" for n in range(course_count)]
    ids = await _seed_backlog(engine, courses, backlog)
    policy = DeliveryPolicy(concurrency=8, poll_interval_s=0.2)
    relay = EventRelay(
        engine,
        [WebhookFanOut(_now)],
        clock=_now,
        timing=RelayTiming(batch_size=500),
        deliverer=WebhookDeliverer(
            engine,
            clock=_now,
            policy=policy,
            destinations=DestinationPolicy.parse(["127.0.0.1"]),  # the local receiver
            keyring=_KEYRING,
        ),
    )
    stop = asyncio.Event()
    started, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(relay.run(stop))
    while relay.published < backlog:
        if time.perf_counter() - started > 300:
            raise RuntimeError("the relay did not publish the backlog in 5 minutes")
        await asyncio.sleep(0.01)
    published_s = time.perf_counter() - started
    await _collect(receiver, ids, timeout_s=300)
    delivered_s = time.perf_counter() - started
    cpu_ms = (time.process_time() - cpu) * 1000 / backlog  # load-independent: this process only
    stop.set()
    await task
    print(f"relay: {backlog} events published (fanned out) in {published_s:.2f} s = "
          f"{backlog / published_s:.0f} events/s")  # fmt: skip
    print(f"webhooks: {backlog} events delivered over {len(courses)} courses in "
          f"{delivered_s:.2f} s = {backlog / delivered_s:.0f} events/s; "
          f"relay + delivery CPU {cpu_ms:.2f} ms/event")  # fmt: skip


async def _seed_backlog(engine: AsyncEngine, courses: list[str], count: int) -> set[str]:
    ids: set[str] = set()
    per_course = count // len(courses)
    now = datetime.now(UTC)
    for round_ in range(per_course):
        events = [
            cloud_event(
                type_="ipt.course.status.changed",
                subject=f"CarePlan/{course}",
                partition_key=course,
                sequence=round_ + 1,
                time=now,
                data={"course_id": course, "round": round_},
            )
            for course in courses
        ]
        async with engine.begin() as conn:
            await append_events(conn, "CarePlan", events, now)
        ids |= {event["id"] for event in events}
    return ids


def _now() -> datetime:
    return datetime.now(UTC)


def _receive(control: Connection) -> None:
    """The webhook receiver process (uvicorn): records each event's first receipt time."""
    first_seen: dict[str, float] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        envelope: dict[str, Any] = orjson.loads(body)
        # A resource change is matched to its write by resource id, others by event id.
        first_seen.setdefault(envelope["data"].get("id") or envelope["id"], time.time())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
            access_log=False, backlog=1024,
        )
    )  # fmt: skip

    def answer() -> None:
        while not server.started:
            time.sleep(0.01)
        control.send(port)
        while control.recv() != "stop":
            control.send(dict(first_seen))  # a C-level copy: safe against the server thread
        server.should_exit = True

    threading.Thread(target=answer, daemon=True).start()
    server.run()


if __name__ == "__main__":
    main()
