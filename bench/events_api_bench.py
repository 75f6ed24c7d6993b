"""Event latency, write commit -> webhook receipt, at the highest write rate the API sustains.

`ipt run` as `make run` starts it (the relay and the webhook delivery loop run in two child
processes of the API's), or (`split`) `ipt serve` and `ipt-worker` in two processes as the Helm
chart deploys them, on a throwaway embedded PostgreSQL under `.bench/pg-events-api/`,
subscribed by one webhook endpoint to every event; a webhook receiver in its own process; wrk
creating Patients over HTTP as fast as the API takes them. Every create commits one
`fhir.resource.changed` event.

An event's latency is its first receipt minus its `time`: the write's instant, stamped in the
write's transaction just before its commit, so the figure bounds commit -> receipt from above
(by the commit itself). Every event in the outbox must arrive, and exactly once.
Run alone: `python -m bench events --phases api [--seconds S] [--connections C]`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.api import servers
from bench.api.scenarios import SCENARIOS, Fixture
from bench.api.wrk import WrkResult, run_wrk, wait_until_idle
from bench.webhook_receiver import Receipt, WebhookReceiver
from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.db.schema import outbox
from ipt_core.events import RESOURCE_CHANGED
from ipt_core.events.webhooks import create_endpoint
from ipt_core.sealing import Keyring, new_key

__all__ = ["ApiLatency", "measure_api_latency", "stages", "subscribe"]

_DATA = Path(".bench") / "pg-events-api"
_WARM_UP_S = 3
_TARGET_P99_MS = 1000.0
_SECRETS_KEYS = new_key("bench")  # seals the receiver's secret for this run only


@dataclass(frozen=True)
class ApiLatency:
    """One run: the write rate wrk got, the events, their latency and the server's CPU."""

    creates: WrkResult
    topology: str  # which processes served: `ipt run`, or `ipt serve` + `ipt-worker`
    connections: int
    events: int
    duplicates: int  # events received more than once
    missing: int
    latency_ms: dict[str, float]  # p50, p99, max
    p99_by_quarter_ms: list[float]  # by write time: rising means delivery falls behind
    stages_ms: dict[str, float]  # write -> published, published -> delivery recorded
    server_cpu_ms_per_write: float

    def summary(self) -> dict[str, Any]:
        """The figures as JSON-ready values."""
        return {
            "topology": self.topology,
            "connections": self.connections,
            "creates_per_s": round(self.creates.ok_per_second, 1),
            "create_p99_ms": self.creates.p99_ms,
            "create_errors": self.creates.errors,
            "events": self.events,
            "duplicates": self.duplicates,
            "missing": self.missing,
            "latency_ms": self.latency_ms,
            "p99_by_quarter_ms": self.p99_by_quarter_ms,
            "stages_ms": self.stages_ms,
            "server_cpu_ms_per_write": round(self.server_cpu_ms_per_write, 2),
            "target_p99_lt_1s": "met" if self.latency_ms["p99"] < _TARGET_P99_MS else "not met",
        }

    def lines(self) -> list[str]:
        """The figures as report lines."""
        once = "exactly once" if not (self.duplicates or self.missing) else "NOT exactly once"
        return [
            f"creates over HTTP to `{self.topology}` (wrk, {self.connections} connections): "
            f"{self.creates.ok_per_second:.0f}/s sustained, p99 {self.creates.p99_ms:.0f} ms, "
            f"{self.creates.errors} failed; server CPU {self.server_cpu_ms_per_write:.2f} ms/write",
            f"events: {self.events} in the outbox, {self.missing} missing, "
            f"{self.duplicates} received twice or more: {once}",
            "write commit -> webhook receipt: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in self.latency_ms.items())
            + "; p99 by quarter of the run "
            + " / ".join(f"{v:.0f}" for v in self.p99_by_quarter_ms)
            + " ms",
            "stages (p50 / p99): write -> published "
            f"{self.stages_ms['published_p50']:.1f} / {self.stages_ms['published_p99']:.1f} ms, "
            f"published -> delivery recorded {self.stages_ms['delivered_p50']:.1f} / "
            f"{self.stages_ms['delivered_p99']:.1f} ms",
            f"target p99 < 1 s at the sustained write rate: {self.summary()['target_p99_lt_1s']}",
        ]


def measure_api_latency(seconds: float, connections: int, *, workers: int = 0) -> ApiLatency:
    """Start a throwaway database and ours on it with a subscriber, drive creates, measure.

    `workers`: 0 runs `ipt run`, one command (the API and two worker processes); else
    `ipt serve` and that many `ipt-worker` processes (they share the webhook deliveries out
    among themselves).
    """
    cluster = EmbeddedPostgres(_DATA, throwaway=True)
    cluster.stop()
    shutil.rmtree(_DATA, ignore_errors=True)
    url = cluster.start().url("postgres")
    receiver = WebhookReceiver()
    try:
        asyncio.run(_prepare(url, receiver.url))
        settings = {
            "DATABASE_URL": url,  # its own database: `.bench/api` may serve another benchmark
            "IPT_EVENT_PUBLISHERS": "webhooks",
            "IPT_OUTBOUND_ALLOW": "127.0.0.1",  # the local receiver
            "IPT_SECRETS_KEYS": _SECRETS_KEYS,
        }
        create = next(s for s in SCENARIOS if s.name == "create").script(Fixture([], []))
        running = (
            servers.running_split(settings, workers=workers)
            if workers
            else servers.running_ours(settings)
        )
        with running as ours:
            run_wrk(ours.root_url, create, connections=connections, seconds=_WARM_UP_S)
            warm = asyncio.run(_all_received(url, receiver))
            for pid in ours.pids:
                wait_until_idle(pid)
            cpu = sum(_cpu_s(pid) for pid in ours.pids)
            creates = run_wrk(ours.root_url, create, connections=connections, seconds=seconds)
            received = asyncio.run(_all_received(url, receiver))
            for pid in ours.pids:
                wait_until_idle(pid)
            cpu = sum(_cpu_s(pid) for pid in ours.pids) - cpu
            outboxed = asyncio.run(_event_ids(url)) - warm.keys()  # the creates' events only
            measured = {key: receipt for key, receipt in received.items() if key in outboxed}
            by_stage = asyncio.run(_stages_at(url, set(measured)))
    finally:
        receiver.stop()
        cluster.stop()
    by_time = sorted(
        (_epoch(receipt.event_time), (receipt.first_at - _epoch(receipt.event_time)) * 1000)
        for receipt in measured.values()
    )
    latencies = sorted(latency for _, latency in by_time)
    quarter = max(len(by_time) // 4, 1)
    quarters = [
        _percentiles(sorted(latency for _, latency in by_time[n * quarter : (n + 1) * quarter]))
        for n in range(4)
    ]
    return ApiLatency(
        creates=creates,
        topology=_topology(workers),
        connections=connections,
        events=len(outboxed),
        duplicates=sum(1 for receipt in measured.values() if receipt.count > 1),
        missing=len(outboxed - measured.keys()),
        latency_ms=_percentiles(latencies),
        p99_by_quarter_ms=[round(q["p99"], 1) for q in quarters],
        stages_ms=by_stage,
        server_cpu_ms_per_write=cpu * 1000 / max(len(outboxed), 1),
    )


def _topology(workers: int) -> str:
    if not workers:
        return "ipt run"
    return "ipt serve + ipt-worker" + (f" x {workers}" if workers > 1 else "")


async def subscribe(engine: AsyncEngine, url: str, keyring: Keyring) -> None:
    """One enabled webhook endpoint at `url` for every event."""
    async with engine.begin() as conn:
        await create_endpoint(
            conn,
            url=url,
            event_types=[],
            therapist_ref=None,
            organization_ref=None,
            now=datetime.now(UTC),
            keyring=keyring,
        )


async def stages(engine: AsyncEngine, ids: set[str] | None = None) -> dict[str, float]:
    """Where the time went (ms, p50 and p99): write -> published -> delivery recorded."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(  # a report query of the benchmark, not the service's SQL
                    "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY "
                    "extract(epoch FROM o.published_at - o.created_at)) AS published, "
                    "percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY "
                    "extract(epoch FROM d.delivered_at - o.published_at)) AS delivered "
                    "FROM outbox o JOIN webhook_delivery d ON d.event_seq = o.seq "
                    "WHERE CAST(:ids AS text[]) IS NULL OR o.id = ANY(CAST(:ids AS text[]))"
                ),
                {"ids": None if ids is None else sorted(ids)},
            )
        ).one()
    return {
        "published_p50": float(row.published[0]) * 1000,
        "published_p99": float(row.published[1]) * 1000,
        "delivered_p50": float(row.delivered[0]) * 1000,
        "delivered_p99": float(row.delivered[1]) * 1000,
    }


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[max(int(len(latencies) * 0.99) - 1, 0)],
        "max": latencies[-1],
    }


async def _prepare(database_url: str, url: str) -> None:
    """Migrate the database and subscribe the receiver."""
    engine = create_engine(database_url, pool_size=1)
    try:
        await upgrade(engine)
        await subscribe(engine, url, Keyring.parse(_SECRETS_KEYS))
    finally:
        await engine.dispose()


async def _event_ids(database_url: str) -> set[str]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            query = select(outbox.c.id).where(outbox.c.type == RESOURCE_CHANGED)
            return set((await conn.scalars(query)).all())
    finally:
        await engine.dispose()


async def _all_received(database_url: str, receiver: WebhookReceiver) -> dict[str, Receipt]:
    """Wait until every event in the outbox has been received (the server may still be
    finishing creates wrk stopped counting: look again until the outbox stops growing)."""
    while True:
        ids = await _event_ids(database_url)
        received = await receiver.wait_for(ids, timeout_s=120)
        await asyncio.sleep(1)
        if await _event_ids(database_url) == ids:
            return received


async def _stages_at(database_url: str, ids: set[str]) -> dict[str, float]:
    engine = create_engine(database_url, pool_size=1)
    try:
        return await stages(engine, ids)
    finally:
        await engine.dispose()


def _epoch(instant: str) -> float:
    return datetime.fromisoformat(instant).timestamp()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
