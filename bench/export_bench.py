"""FHIR Bulk Data `$export`: throughput (resources/s) and peak memory of the API and worker.

A throwaway embedded PostgreSQL is filled with N resources through the bulk-load path
(`ipt_core.fhir.bulk`: one Patient per 20 PHQ-9 Observations). Then a real API process
(`ipt serve`) and a real worker process (`python -m ipt_worker`) run a system-level export
the way a Bulk Data client asks for it — kick-off, poll, download every file over HTTP —
and the peak resident memory (VmHWM) of both processes is read from /proc at the end.
Run: `python -m bench.export_bench [--resources N] [--page-size P]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.fhir.bulk import bulk_load, deferred_indexes
from tests.support.network import free_port
from tests.support.processes import stop_process

_DATA = Path(".bench") / "pg-export"
_OBSERVATIONS_PER_PATIENT = 20


def main() -> None:
    """Load, export, download; print throughput and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=1000, help="resources per chunk")
    args = parser.parse_args()
    asyncio.run(_main(args.resources, args.page_size))


async def _main(resources: int, page_size: int) -> None:
    cluster = EmbeddedPostgres(_DATA, throwaway=True)
    cluster.stop()
    shutil.rmtree(_DATA, ignore_errors=True)
    url = cluster.start().url("postgres")
    try:
        loaded = await _load(url, resources)
        await _export(url, loaded, page_size)
    finally:
        cluster.stop()


async def _load(url: str, resources: int) -> int:
    engine = create_engine(url, pool_size=2)
    try:
        await upgrade(engine)
        started = time.perf_counter()
        async with deferred_indexes(engine), engine.begin() as conn:
            loaded = await bulk_load(
                conn, _resources(resources), now=datetime.now(UTC), validate=False
            )
        print(f"loaded {loaded} resources in {time.perf_counter() - started:.1f} s", flush=True)
        return loaded
    finally:
        await engine.dispose()


def _resources(count: int) -> Iterator[dict[str, Any]]:
    """Generated lazily: the load itself runs in constant memory too."""
    patient = ""
    for n in range(count):
        if n % (_OBSERVATIONS_PER_PATIENT + 1) == 0:
            patient = f"p{n:09d}"
            yield {"resourceType": "Patient", "id": patient, "gender": "female"}
            continue
        yield {
            "resourceType": "Observation",
            "id": f"o{n:09d}",
            "status": "final",
            "category": [{"coding": [{"system": _CATEGORY, "code": "survey"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2026-03-04T12:00:00Z",
            "valueInteger": n % 28,
        }


_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


async def _export(url: str, loaded: int, page_size: int) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url.replace("+asyncpg", ""),
        "IPT_AUTH_MODE": "disabled",
        "IPT_API_PORT": str(port),
        "IPT_EXPORT_PAGE_SIZE": str(page_size),
        "IPT_EXPORT_POLL_INTERVAL_S": "0.2",
        "IPT_EXPORT_RETRY_AFTER_S": "1",
        "IPT_EVENT_PUBLISHERS": "log",
    }
    api = _start(["-c", _SERVE], env)
    worker = _start(["-m", "ipt_worker"], env)
    try:
        base = f"http://127.0.0.1:{port}/fhir"
        async with httpx.AsyncClient(timeout=600) as http:
            await _wait_until_up(http, base)
            started = time.perf_counter()
            manifest = await _run_export(http, base)
            exported = time.perf_counter() - started
            count = sum(output["count"] for output in manifest["output"])
            print(
                f"exported {count} of {loaded} resources in {exported:.1f} s: "
                f"{count / exported:,.0f} resources/s (page size {page_size})",
                flush=True,
            )
            started = time.perf_counter()
            size = await _download(http, manifest)
            took = time.perf_counter() - started
            print(
                f"downloaded {size / 1e6:,.0f} MB over HTTP in {took:.1f} s "
                f"({size / 1e6 / took:,.0f} MB/s)",
                flush=True,
            )
        print(f"API peak memory (VmHWM): {_peak_mb(api.pid):,.0f} MB", flush=True)
        print(f"worker peak memory (VmHWM): {_peak_mb(worker.pid):,.0f} MB", flush=True)
    finally:
        for process in (api, worker):
            stop_process(process)


_SERVE = "from ipt_api.cli import main; main(['serve'])"


def _start(arguments: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A Python child process, quiet (its logs would drown the numbers)."""
    return subprocess.Popen(
        [sys.executable, *arguments],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_until_up(http: httpx.AsyncClient, base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if (await http.get(f"{base}/metadata")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the API did not start")


async def _run_export(http: httpx.AsyncClient, base: str) -> dict[str, Any]:
    kick_off = await http.get(f"{base}/$export", headers={"Prefer": "respond-async"})
    kick_off.raise_for_status()
    status_url = kick_off.headers["Content-Location"]
    while True:
        response = await http.get(status_url)
        if response.status_code == 200:
            manifest: dict[str, Any] = response.json()
            return manifest
        if response.status_code != 202:
            raise RuntimeError(f"export status {response.status_code}")
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


async def _download(http: httpx.AsyncClient, manifest: dict[str, Any]) -> int:
    size = 0
    for output in manifest["output"]:
        lines = 0
        async with http.stream("GET", output["url"]) as response:
            response.raise_for_status()
            async for block in response.aiter_bytes():
                size += len(block)
                lines += block.count(b"\n")
        if lines != output["count"]:
            raise RuntimeError(f"{output['type']}: {lines} lines, manifest says {output['count']}")
    return size


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
