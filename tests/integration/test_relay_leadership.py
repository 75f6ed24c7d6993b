"""One relay leads at a time; a standby takes over when the leader dies or loses its session.

The crash test SIGKILLs a real `ipt-worker` process (`ipt_worker.__main__.main`) while it
publishes and delivers; a second worker process stands by and takes over, and the webhook
receiver still gets every event, each course's in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_worker.relay import LEADER_LOCK, EventRelay
from tests.integration.events_support import (
    LOOPBACK_ALLOWED,
    Reply,
    WebhookReceiver,
    append_course_events,
    assert_in_order_per_course,
    fast_timing,
    subscribe,
)
from tests.support.api import TEST_SECRETS_KEYS
from tests.support.clock import utc_now
from tests.support.waiting import poll_until

COURSES = tuple(f"course-{n}" for n in range(6))


async def leader_pid(db: AsyncEngine) -> int | None:
    """The backend pid holding the relay's advisory lock in this database, if any."""
    async with db.connect() as conn:
        pid = await conn.scalar(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND objsubid = 1 AND classid::bigint = :high AND objid::bigint = :low"
            ),
            {"high": (LEADER_LOCK >> 32) & 0xFFFFFFFF, "low": LEADER_LOCK & 0xFFFFFFFF},
        )
    return None if pid is None else int(pid)


async def test_one_leader_and_a_standby_that_takes_over(db: AsyncEngine) -> None:
    first = EventRelay(db, [], clock=utc_now, timing=fast_timing())
    second = EventRelay(db, [], clock=utc_now, timing=fast_timing())
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(first.run(stop_first)),
        asyncio.create_task(second.run(stop_second)),
    ]
    try:
        await poll_until(lambda: first.is_leader or second.is_leader)
        await asyncio.sleep(0.3)  # standbys retry every 0.1 s: none may lead as well
        assert first.is_leader != second.is_leader
        leader, standby = (first, stop_first), (second, stop_second)
        if second.is_leader:
            leader, standby = standby, leader
        leader[1].set()
        await poll_until(lambda: standby[0].is_leader, within_s=2, what="the standby to lead")
        await append_course_events(db, ["c1"], 2)
        await poll_until(lambda: standby[0].published == 2)
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.gather(*tasks)


async def test_a_leader_whose_session_ends_stops_leading(db: AsyncEngine) -> None:
    relay = EventRelay(db, [], clock=utc_now, timing=fast_timing(poll_interval_s=0.1))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await poll_until(lambda: relay.is_leader)
        old = await leader_pid(db)
        async with db.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": old})
        await poll_until(lambda: _led_by_another(db, old), what="a new leader session")
        await append_course_events(db, ["c1"], 1)
        await poll_until(lambda: relay.published == 1)
    finally:
        stop.set()
        await task


async def _led_by_another(db: AsyncEngine, old: int | None) -> bool:
    pid = await leader_pid(db)
    return pid is not None and pid != old


@pytest.fixture
def receiver(receiver: WebhookReceiver) -> WebhookReceiver:
    """The shared receiver, a little slow to answer (a batch is still in flight at a kill)."""
    receiver.plan = lambda envelope, attempt: Reply(delay_s=0.005)
    return receiver


# Imports once, then forks one `ipt-worker` per log file: the workers start in parallel
# without each paying the import time. Each child writes its pid first, then its log.
_FORK_WORKERS = """
import os, sys
from ipt_worker.__main__ import main
for path in sys.argv[1:]:
    if os.fork() == 0:
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        print(f"pid {os.getpid()}", flush=True)
        main()
        os._exit(0)
"""


def start_workers(database_url: str, logs: list[Path]) -> subprocess.Popen[bytes]:
    """Two `ipt-worker`s (`ipt_worker.__main__.main`) with quick relay settings."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "IPT_EVENT_PUBLISHERS": "webhooks",
        "IPT_OUTBOUND_ALLOW": ",".join(LOOPBACK_ALLOWED),  # the receiver listens on loopback
        "IPT_SECRETS_KEYS": TEST_SECRETS_KEYS,  # opens the secret `subscribe` sealed
        "IPT_RELAY_BATCH_SIZE": "20",
        "IPT_RELAY_POLL_INTERVAL_S": "0.2",
        "IPT_RELAY_STANDBY_RETRY_S": "0.1",
        "IPT_WEBHOOK_CONCURRENCY": "4",
        "IPT_WEBHOOK_BACKOFF_INITIAL_S": "0.05",
        "IPT_WEBHOOK_BACKOFF_MAX_S": "0.3",
        "IPT_WEBHOOK_POLL_INTERVAL_S": "0.1",
        "IPT_DATABASE_POOL_SIZE": "4",
    }
    command = [sys.executable, "-c", _FORK_WORKERS, *map(str, logs)]
    return subprocess.Popen(command, env=env)


def worker_pid(log: Path) -> int:
    """The OS pid a forked worker wrote on its log's first line."""
    return int(log.read_text().split("\n", 1)[0].removeprefix("pid "))


@pytest.mark.slow
async def test_a_killed_leader_process_is_replaced_and_nothing_is_missing(
    db: AsyncEngine, database_url: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    await subscribe(db, receiver)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    launcher = start_workers(database_url, logs)
    try:
        await poll_until(lambda: _leading(logs) is not None, within_s=20, what="a worker to lead")
        await poll_until(lambda: all("started" in _text(log) for log in logs), within_s=20)
        first_session = await leader_pid(db)
        writer = asyncio.create_task(_write_rounds(db, rounds=20))
        await poll_until(lambda: len(receiver.accepted()) >= 30, within_s=8, what="deliveries")
        # SIGKILL mid-batch: events are being written, published and delivered.
        os.kill(worker_pid(logs[_leading(logs) or 0]), signal.SIGKILL)
        sent = await writer
        await poll_until(
            lambda: receiver.accepted_ids() >= {e["id"] for e in sent}, within_s=10, what="all"
        )
        assert await leader_pid(db) not in (None, first_session)
    finally:
        for log in logs:
            with contextlib.suppress(OSError, ValueError):
                os.kill(worker_pid(log), signal.SIGTERM)
        launcher.wait(timeout=10)
    assert receiver.accepted_ids() == {e["id"] for e in sent}
    assert_in_order_per_course(receiver.accepted())
    assert all(receipt.signature_ok for receipt in receiver.receipts)


async def _write_rounds(db: AsyncEngine, *, rounds: int) -> list[dict[str, object]]:
    sent = []
    for _ in range(rounds):
        sent += await append_course_events(db, COURSES, 1)
        await asyncio.sleep(0.02)
    return sent


def _leading(logs: list[Path]) -> int | None:
    """Which worker (by index) logged that it leads the relay."""
    for index, log in enumerate(logs):
        if "event relay: leading" in _text(log):
            return index
    return None


def _text(log: Path) -> str:
    return log.read_text() if log.exists() else ""
