"""The three servers `make bench` drives, each started and stopped by the harness.

- ours: `ipt run` as `make run` starts it (the worker loops in two child processes; auth
  disabled, or with `auth` on as `make run` has it) against its own embedded PostgreSQL under
  `.bench/api/`, seeded beforehand through the bulk-load path (`running_split`: `ipt serve`
  and `ipt-worker` in two processes, as the Helm chart deploys them, for the event benchmark);
- limit: `bench.stack_limit` on the same database;
- peer: sekmet-fhir as shipped, from its own virtual environment (tests/support/sekmet.py),
  seeded with the same resources through its API (transactions of PUTs, so ids are kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from ipt_api.devauth import DevAuth, dev_settings, mint_dev_token
from ipt_api.settings import ApiSettings
from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.db.provision import database_url
from ipt_core.fhir.bulk import bulk_load, deferred_indexes
from tests.support.network import free_port
from tests.support.processes import stop_process
from tests.support.sekmet import running_sekmet

__all__ = [
    "Running",
    "running_limit",
    "running_ours",
    "running_peer",
    "running_split",
    "seed_ours",
]

_DATA = Path(".bench") / "api"


@dataclass(frozen=True)
class Running:
    """A server under test: where it listens, and its process id (for the profiler)."""

    root_url: str
    pid: int
    others: tuple[int, ...] = ()  # its other processes (a separate worker)
    headers: Mapping[str, str] = field(default_factory=dict)  # on every request (a token)

    @property
    def pids(self) -> tuple[int, ...]:
        """Every process of the server."""
        return (self.pid, *self.others)


def _settings() -> ApiSettings:
    return ApiSettings(auth_mode="disabled", api_host="127.0.0.1", data_dir=_DATA)


def seed_ours(resources: Iterable[dict[str, Any]]) -> tuple[str, float]:
    """Recreate the bench database, bulk-load `resources`; return its URL and the seconds."""
    cluster = EmbeddedPostgres(_DATA / "postgres")
    cluster.stop()
    shutil.rmtree(_DATA, ignore_errors=True)
    return asyncio.run(_seed(resources))


async def _seed(resources: Iterable[dict[str, Any]]) -> tuple[str, float]:
    url, _ = await database_url(_settings())
    engine = create_engine(url, pool_size=2)
    try:
        await upgrade(engine)
        began = time.perf_counter()
        async with deferred_indexes(engine), engine.begin() as conn:
            await bulk_load(conn, resources, now=datetime.now(UTC), validate=False)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
        return url, time.perf_counter() - began
    finally:
        await engine.dispose()


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], probe: str, name: str) -> Iterator[int]:
    log = _DATA / f"{name}.log"
    _DATA.mkdir(parents=True, exist_ok=True)  # `python -m bench events` alone: not made yet
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(process, probe, log)
        yield process.pid
    finally:
        stop_process(process, timeout_s=60)


@contextlib.contextmanager
def running_ours(
    settings: Mapping[str, str] | None = None, *, auth: bool = False
) -> Iterator[Running]:
    """`ipt run` on the seeded bench database (plus `settings`), with authentication off, or
    with `auth` on as `make run` has it: the dev key, and a `system/*.*` token to send."""
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    access: dict[str, str] = {"IPT_AUTH_MODE": "disabled"}
    headers: dict[str, str] = {}
    if auth:
        dev = DevAuth(_DATA / "dev-auth")
        audience = f"{root}/fhir"
        access = dev_settings(dev, audience)  # what `ipt dev-env` gives `make run`
        token = mint_dev_token(dev, scope="system/*.*", audience=audience, subject="bench")
        headers = {"Authorization": f"Bearer {token}"}
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        **(settings or {}),
        **access,
        "IPT_DATA_DIR": str(_DATA),
        "IPT_API_PORT": str(port),
    }
    ipt = str(Path(sys.executable).parent / "ipt")
    with _process([ipt, "run"], env, f"{root}/fhir/metadata", "ours") as pid:
        yield Running(root, pid, headers=headers)


@contextlib.contextmanager
def running_split(settings: Mapping[str, str], *, workers: int = 1) -> Iterator[Running]:
    """`ipt serve` and `workers` `ipt-worker`s on `settings["DATABASE_URL"]`, as the Helm
    chart runs them (`worker.replicaCount`)."""
    port = free_port()
    env = {**os.environ, **settings, "IPT_AUTH_MODE": "disabled", "IPT_API_PORT": str(port)}
    bin_dir = Path(sys.executable).parent
    root = f"http://127.0.0.1:{port}"
    _DATA.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    try:
        for number in range(workers):
            with (_DATA / f"worker-{number}.log").open("wb") as out:
                started.append(
                    subprocess.Popen(
                        [str(bin_dir / "ipt-worker")], env=env, stdout=out, stderr=subprocess.STDOUT
                    )
                )
        with _process([str(bin_dir / "ipt"), "serve"], env, f"{root}/fhir/metadata", "api") as pid:
            yield Running(root, pid, tuple(worker.pid for worker in started))
    finally:
        for worker in started:
            stop_process(worker, timeout_s=60)


@contextlib.contextmanager
def running_limit(url: str) -> Iterator[Running]:
    """The stack-limit app on the bench database at `url`."""
    port = free_port()
    command = [sys.executable, "-m", "bench.stack_limit", "--database-url", url]
    root = f"http://127.0.0.1:{port}"
    with _process([*command, "--port", str(port)], dict(os.environ), f"{root}/", "limit") as pid:
        yield Running(root, pid)


@contextlib.contextmanager
def running_peer() -> Iterator[Running]:
    """sekmet-fhir, as shipped, on a fresh database under `.bench/api/peer`."""
    with contextlib.ExitStack() as stack:
        for attempt in range(3):
            home = _DATA / "peer"
            shutil.rmtree(home, ignore_errors=True)
            try:  # on a loaded machine its first /metadata can miss the launcher's deadline
                sekmet = stack.enter_context(running_sekmet(home.resolve()))
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                print("peer: sekmet did not come up in time; starting it again", flush=True)
        yield Running(sekmet.root_url, _child_pid("sekmet"))


def _child_pid(name: str) -> int:
    """The pid of this process's child whose command line mentions `name` (0 if none)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
            if parent == os.getpid() and name.encode() in command:
                return int(stat.parent.name)
    return 0


def seed_peer(root_url: str, resources: Iterable[dict[str, Any]], per_bundle: int = 100) -> float:
    """PUT `resources` into the peer in transactions of `per_bundle`; return the seconds."""
    began = time.perf_counter()
    batch: list[dict[str, Any]] = []
    with httpx.Client(base_url=f"{root_url}/fhir", timeout=120) as client:
        for resource in resources:
            batch.append(resource)
            if len(batch) == per_bundle:
                _put_bundle(client, batch)
                batch = []
        if batch:
            _put_bundle(client, batch)
    return time.perf_counter() - began


def _put_bundle(client: httpx.Client, resources: list[dict[str, Any]]) -> None:
    entries = [
        {
            "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
        }
        for resource in resources
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = client.post("", json=bundle, headers={"Content-Type": "application/fhir+json"})
    if response.status_code != 200:
        raise RuntimeError(f"seeding the peer failed: {response.status_code} {response.text[:500]}")
