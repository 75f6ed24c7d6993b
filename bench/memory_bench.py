"""API memory over a million reads: is the resident set flat after warm-up?

`ipt run` as `make bench` starts it (`bench.api.servers`), on the bench database seeded with
`--patients` Patients (each with a CarePlan, Encounters and PHQ-9s). wrk (32 connections)
drives a mix over every seeded Patient — 80% read by id, 10% vread, 10% search
`Encounter?subject=…` — first for the warm-up, then in runs of `--chunk-seconds` until
`--reads` requests were answered. A thread samples the server's VmRSS (/proc/<pid>/status)
every `--sample-seconds`. Reported: RSS after warm-up, at the end, the maximum, and the growth
(end and maximum over the warm-up figure; the target of issue 11: within 10%). Results:
bench/results/memory.md and memory.json, rewritten after every run, so a stopped benchmark
still leaves its figures. Run: `python -m bench memory [--reads N]` (`make bench-memory`).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.api import servers
from bench.api.wrk import lua_list, require_wrk, run_wrk, wait_until_idle
from bench.dataset import course_resources, ident
from bench.results_file import write_results

_TARGET_GROWTH = 0.10
_SESSIONS, _PHQ9 = 10, 3  # as the HTTP benchmark seeds


def main() -> None:
    """Seed, start ours, warm up, drive the reads while sampling RSS, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=1_000_000, help="requests after warm-up")
    parser.add_argument("--patients", type=int, default=2000, help="seeded Patients")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warm-up-seconds", type=float, default=30)
    parser.add_argument("--chunk-seconds", type=float, default=30, help="length of a wrk run")
    parser.add_argument("--sample-seconds", type=float, default=2)
    args = parser.parse_args()
    require_wrk()
    _, seconds = servers.seed_ours(_caseload(args.patients))
    print(f"memory: seeded {args.patients} Patients' records in {seconds:.0f} s", flush=True)
    script = _mix([ident("patient", n) for n in range(args.patients)])
    with servers.running_ours() as ours:
        run_wrk(ours.root_url, script, connections=args.connections, seconds=args.warm_up_seconds)
        wait_until_idle(ours.pid)
        sampler = _Sampler(ours.pid, args.sample_seconds)
        report = _Report(args, sampler)
        sampler.start()
        try:
            while report.requests < args.reads:
                result = run_wrk(
                    ours.root_url, script, connections=args.connections, seconds=args.chunk_seconds
                )
                report.add_run(result.requests, result.errors)
                print(report.progress(), flush=True)
        finally:
            sampler.stop()
            report.write()
    print(f"results: {report.write()}")


def _caseload(patients: int) -> Iterator[dict[str, Any]]:
    for n in range(patients):
        yield from course_resources(n, sessions=_SESSIONS, phq9=_PHQ9)


def _mix(patients: list[str]) -> str:
    """wrk's Lua: a random seeded Patient each request; read, vread or search by it."""
    return (
        f"ids = {lua_list(patients)}\n"
        "request = function()\n"
        "  local id = ids[math.random(#ids)]\n"
        "  local pick = math.random(10)\n"
        "  if pick == 1 then\n"
        "    return wrk.format('GET', '/fhir/Patient/' .. id .. '/_history/1')\n"
        "  end\n"
        "  if pick == 2 then\n"
        "    return wrk.format('GET', '/fhir/Encounter?subject=Patient/' .. id .. '&_count=20')\n"
        "  end\n"
        "  return wrk.format('GET', '/fhir/Patient/' .. id)\n"
        "end\n"
    )


class _Sampler(threading.Thread):
    """Reads the server's VmRSS every `interval` seconds: (seconds since start, KiB)."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.began = time.monotonic()
        self.samples: list[tuple[float, int]] = [(0.0, rss_kib(pid))]
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.samples.append((time.monotonic() - self.began, rss_kib(self.pid)))

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.samples.append((time.monotonic() - self.began, rss_kib(self.pid)))


def rss_kib(pid: int) -> int:
    """The resident set of process `pid` in KiB (0 once it has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class _Report:
    """The runs so far and the RSS figures, written as JSON and Markdown."""

    def __init__(self, args: argparse.Namespace, sampler: _Sampler) -> None:
        self.args, self.sampler = args, sampler
        self.requests = self.errors = 0
        self.runs: list[dict[str, Any]] = []  # requests so far and RSS after each wrk run
        load = os.getloadavg()
        self.meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load average at start": f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
            "data": f"{args.patients} Patients, {_SESSIONS} Encounters and {_PHQ9} PHQ-9s each",
            "wrk": f"{args.connections} connections, runs of {args.chunk_seconds:g} s; "
            "80% read, 10% vread, 10% search Encounter?subject=",
        }

    def add_run(self, requests: int, errors: int) -> None:
        self.requests += requests
        self.errors += errors
        self.runs.append({"requests": self.requests, "rss_mib": rss_kib(self.sampler.pid) / 1024})
        self.write()

    def figures(self) -> dict[str, Any]:
        samples = self.sampler.samples
        warm, end = samples[0][1], samples[-1][1]
        peak = max(rss for _, rss in samples)
        seconds = samples[-1][0] or 1.0
        growth = (end - warm) / warm if warm else 0.0
        return {
            "requests": self.requests,
            "failed": self.errors,
            "requests_per_s": round(self.requests / seconds, 1),
            "rss_after_warm_up_mib": round(warm / 1024, 1),
            "rss_end_mib": round(end / 1024, 1),
            "rss_max_mib": round(peak / 1024, 1),
            "growth_end_pct": round(100 * growth, 2),
            "growth_max_pct": round(100 * (peak - warm) / warm, 2) if warm else 0.0,
            "target_within_10pct": "met"
            if self.requests >= self.args.reads and growth <= _TARGET_GROWTH
            else "not met"
            if growth > _TARGET_GROWTH
            else "not measured (fewer requests)",
        }

    def progress(self) -> str:
        f = self.figures()
        return (
            f"memory: {f['requests']:,} requests ({f['requests_per_s']:.0f}/s), RSS "
            f"{f['rss_after_warm_up_mib']} -> {f['rss_end_mib']} MiB (max {f['rss_max_mib']}, "
            f"{f['growth_end_pct']:+.1f}%)"
        )

    def write(self) -> Path:
        figures = self.figures()
        data = {**self.meta, **figures, "runs": self.runs, "samples": self.sampler.samples}
        lines = [
            "# API memory over reads after warm-up",
            "",
            *(f"- {key}: {value}" for key, value in self.meta.items()),
            "",
            "| figure | value |",
            "| --- | --- |",
            *(f"| {key} | {value} |" for key, value in figures.items()),
            "",
            "| requests so far | RSS (MiB) |",
            "| ---: | ---: |",
            *(f"| {run['requests']:,} | {run['rss_mib']:.1f} |" for run in self.runs),
        ]
        return write_results("memory", data, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
