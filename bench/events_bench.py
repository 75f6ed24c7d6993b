"""Event delivery: latency from FHIR write commit to webhook receipt, and relay throughput.

Three phases (`--phases`, default all; `make bench` runs `api`):
- api: at the highest write rate the API sustains, through `ipt run` and again through
  `ipt serve` + `ipt-worker` in two processes (`bench.events_api_bench`);
- store: a throwaway embedded PostgreSQL, a real `ipt-worker` process (relay leader, webhook
  publisher) and the webhook receiver; Patients created through the FHIR store (with the
  default listeners, as the API writes) at a fixed `--rate`, one transaction each;
- throughput: a backlog of status events over many courses, published and delivered by an
  in-process relay.
Each event's latency is its receipt time minus its write's commit time. Results:
bench/results/events.md and events.json.
Run: `python -m bench events [--phases api,store,throughput] [--seconds S] [--rate R] ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.events_api_bench import measure_api_latency, stages, subscribe
from bench.results_file import write_results
from bench.webhook_receiver import WebhookReceiver
from ipt_core.composition import write_listeners
from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.events import append_events, cloud_event
from ipt_core.fhir.store import ResourceStore
from ipt_core.net import DestinationPolicy
from ipt_core.sealing import Keyring, new_key
from ipt_worker.publishers import DeliveryPolicy, WebhookDeliverer
from ipt_worker.relay import EventRelay, RelayTiming
from tests.support.processes import stop_process

_DATA = Path(".bench") / "pg-events"
_PATIENT = {"resourceType": "Patient", "gender": "female", "birthDate": "1980-01-01"}
_PHASES = ("api", "store", "throughput")
# The api phase, three times: `ipt run` as `make run` starts it (one command), then API and
# worker in their own processes as the Helm chart deploys them, with one worker and with one
# worker per core (the workers share the webhook deliveries out among themselves).
_CORES = os.cpu_count() or 1
_TOPOLOGIES = (
    ("api", 0, "`ipt run`: one command, two worker processes"),
    ("api_split", 1, "`ipt serve` + `ipt-worker`: two processes"),
    ("api_workers", _CORES, f"`ipt serve` + {_CORES} `ipt-worker`s: one worker per core"),
)

_SECRETS_KEYS = new_key("bench")  # seals the receiver's secret for this run only
_KEYRING = Keyring.parse(_SECRETS_KEYS)


def main() -> None:
    """Run the chosen phases; print and write their results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default=",".join(_PHASES), help=",".join(_PHASES))
    parser.add_argument("--seconds", type=float, default=20, help="of writes, api and store")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (api)")
    parser.add_argument("--rate", type=float, default=200, help="FHIR writes per second (store)")
    parser.add_argument("--backlog", type=int, default=20_000, help="events, throughput phase")
    parser.add_argument("--courses", type=int, default=200, help="their courses (queues)")
    args = parser.parse_args()
    phases = [name for name in args.phases.split(",") if name]
    lines: list[str] = []
    data: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    data["load average"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    if "api" in phases:
        for key, workers, title in _TOPOLOGIES:
            api = measure_api_latency(args.seconds, args.connections, workers=workers)
            data[key] = api.summary()
            lines += [f"## At the API's sustained write rate ({title}, wrk creates)", ""]
            lines += [f"- {line}" for line in api.lines()] + [""]
            print("\n".join(api.lines()), flush=True)
    if {"store", "throughput"} & set(phases):
        lines += asyncio.run(_store_phases(phases, args))
    markdown = f"# Event latency and relay throughput\n\n{data['date']}, load average " \
        f"{data['load average']}\n\n" + "\n".join(lines) + "\n"  # fmt: skip
    print(f"results: {write_results('events', data, markdown)}")


async def _store_phases(phases: list[str], args: argparse.Namespace) -> list[str]:
    cluster = EmbeddedPostgres(_DATA, throwaway=True)
    cluster.stop()
    shutil.rmtree(_DATA, ignore_errors=True)
    url = cluster.start().url("postgres")
    engine = create_engine(url, pool_size=8)
    receiver = WebhookReceiver()
    lines: list[str] = []
    try:
        await upgrade(engine)
        await subscribe(engine, receiver.url, _KEYRING)
        if "store" in phases:
            lines += ["## Store writes at a fixed rate, `ipt-worker` process", ""]
            lines += await _latency(engine, url, receiver, args.rate, args.seconds)
        if "throughput" in phases:
            lines += ["## Relay and delivery throughput (backlog)", ""]
            lines += await _throughput(engine, receiver, args.backlog, args.courses)
    finally:
        receiver.stop()
        await engine.dispose()
        cluster.stop()
    return lines


async def _latency(
    engine: AsyncEngine, url: str, receiver: WebhookReceiver, rate: float, seconds: float
) -> list[str]:
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
        received = await _received_by_resource(receiver, set(committed))
    finally:
        stop_process(worker, timeout_s=15)
    latencies = sorted((received[id_] - at) * 1000 for id_, at in committed.items())
    split = await stages(engine)
    lines = [
        f"writes: {len(writes)} at {achieved:.0f}/s (target {rate:.0f}/s); all delivered",
        "stages (p50 / p99): write -> published "
        f"{split['published_p50']:.1f} / {split['published_p99']:.1f} ms, "
        f"published -> delivery recorded {split['delivered_p50']:.1f} / "
        f"{split['delivered_p99']:.1f} ms",
        "write commit -> webhook receipt: "
        f"p50 {latencies[len(latencies) // 2]:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms, "
        f"max {latencies[-1]:.1f} ms",
    ]
    print("\n".join(lines), flush=True)
    return [*(f"- {line}" for line in lines), ""]


async def _received_by_resource(receiver: WebhookReceiver, ids: set[str]) -> dict[str, float]:
    """First receipt of each resource's event, by resource id, once all of `ids` arrived."""
    deadline = time.monotonic() + 60
    while True:
        received = await asyncio.to_thread(receiver.received)
        by_resource = {r.resource_id: r.first_at for r in received.values() if r.resource_id}
        if ids <= by_resource.keys():
            return by_resource
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ids - by_resource.keys())} events never arrived")
        await asyncio.sleep(0.2)


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


async def _throughput(
    engine: AsyncEngine, receiver: WebhookReceiver, backlog: int, course_count: int
) -> list[str]:
    courses = [f"course-{n}" for n in range(course_count)]
    ids = await _seed_backlog(engine, courses, backlog)
    policy = DeliveryPolicy(concurrency=8, poll_interval_s=0.2)
    relay = EventRelay(
        engine,
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
    await receiver.wait_for(ids, timeout_s=300)
    delivered_s = time.perf_counter() - started
    cpu_ms = (time.process_time() - cpu) * 1000 / backlog  # load-independent: this process only
    stop.set()
    await task
    lines = [
        f"relay: {backlog} events published (fanned out) in {published_s:.2f} s = "
        f"{backlog / published_s:.0f} events/s",
        f"webhooks: {backlog} events delivered over {len(courses)} courses in "
        f"{delivered_s:.2f} s = {backlog / delivered_s:.0f} events/s; "
        f"relay + delivery CPU {cpu_ms:.2f} ms/event",
    ]
    print("\n".join(lines), flush=True)
    return [*(f"- {line}" for line in lines), ""]


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


if __name__ == "__main__":
    main()
