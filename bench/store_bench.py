"""Read and create throughput of the FHIR store, measured with wrk against a real server.

Seeds Patients into a throwaway embedded PostgreSQL, starts `ipt serve` (one uvicorn process),
then runs wrk for reads of random seeded Patients and for creates. Needs `wrk` on PATH
(Debian package `wrk`). Run: `python -m bench.store_bench [--patients N] [--seconds S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ipt_core.db.embedded import EmbeddedPostgres

_BENCH_DIR = Path(".bench")
_PORT = 8765
_PATIENT = (
    '{"resourceType":"Patient","identifier":[{"system":"urn:bench","value":"%d"}],'
    '"name":[{"family":"Bench","given":["Load"]}],"gender":"female","birthDate":"1980-01-01"}'
)


def main() -> None:
    """Seed, serve, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    cluster = EmbeddedPostgres(_BENCH_DIR / "pg-store", throwaway=True)
    if cluster.pgdata.exists():
        cluster.stop()
        shutil.rmtree(cluster.pgdata)
    server = cluster.start()
    api = None
    try:
        env = {
            **os.environ,
            "DATABASE_URL": server.url("postgres"),
            "IPT_AUTH_MODE": "disabled",
            "IPT_API_PORT": str(_PORT),
        }
        ipt = str(Path(sys.executable).parent / "ipt")
        subprocess.run([ipt, "migrate"], env=env, check=True, capture_output=True)
        api = subprocess.Popen(
            [ipt, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{_PORT}/fhir"
        _wait_until_up(base)
        started = time.perf_counter()
        ids = asyncio.run(_seed(base, args.patients))
        seeded = time.perf_counter() - started
        print(
            f"seeded {len(ids)} Patients through the API in {seeded:.1f} s "
            f"({len(ids) / seeded:.0f}/s, 8 concurrent Python clients)"
        )
        host = base.rsplit("/fhir", 1)[0]
        _wrk("read  GET /fhir/Patient/{random id}", host, _read_script(ids), args)
        _wrk("create POST /fhir/Patient", f"{base}/Patient", _create_script(), args)
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        cluster.stop()


def _wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/metadata").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("the API did not start")


async def _seed(base: str, count: int) -> list[str]:
    ids: list[str] = []
    headers = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker(numbers: range) -> None:
            for n in numbers:
                response = await client.post(
                    f"{base}/Patient", content=_PATIENT % n, headers=headers
                )
                response.raise_for_status()
                ids.append(response.headers["Location"].split("/")[-3])

        step = count // 8 + 1
        await asyncio.gather(
            *(worker(range(i, min(i + step, count))) for i in range(0, count, step))
        )
    return ids


def _read_script(ids: list[str]) -> str:
    sample = random.sample(ids, min(len(ids), 2000))
    listed = ",".join(f'"{i}"' for i in sample)
    return (
        f"ids = {{{listed}}}\n"
        "request = function()\n"
        "  return wrk.format('GET', '/fhir/Patient/' .. ids[math.random(#ids)])\n"
        "end\n"
    )


def _create_script() -> str:
    body = (_PATIENT % 0).replace('"', '\\"')
    return (
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/fhir+json"\n'
        'wrk.headers["Prefer"] = "return=minimal"\n'
    )


def _wrk(label: str, url: str, script: str, args: argparse.Namespace) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{args.connections}",
            f"-d{args.seconds}s",
            "--latency",
            "-s",
            handle.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    Path(handle.name).unlink()
    lines = result.stdout.splitlines()
    wanted = ("Requests/sec", "50%", "99%", "Non-2xx", "Socket errors")
    print(f"\n{label}  ({args.connections} connections, {args.seconds} s)")
    for line in lines:
        if line.strip().startswith(wanted):
            print("   ", line.strip())


if __name__ == "__main__":
    main()
