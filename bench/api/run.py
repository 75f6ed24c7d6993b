"""`make bench`: seed, start the servers, drive each scenario on each of them with wrk, report.

    python -m bench [--scenarios read,search] [--servers ours,peer,limit]
                    [--connections 32,8] [--seconds 10] [--rounds 1]
                    [--profile [read,create]]

From the Makefile: `make bench ARGS="--scenarios read --servers ours,limit --seconds 5"`.
Results go to bench/results/ (results.md, results.json; with --profile, `<scenario>.folded`
and `profile-<scenario>.md` for each profiled scenario).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.api import servers
from bench.api.profile import profile_scenario
from bench.api.report import Measurement, Report
from bench.api.scenarios import LIMIT, OURS, PEER, SCENARIOS, Fixture, Scenario
from bench.api.wrk import require_wrk, run_wrk, wait_until_idle
from bench.dataset import course_resources, ident
from ipt_core.ipt import codes

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parents[1] / "results"
_SESSIONS, _PHQ9 = 10, 3  # per seeded patient: 20,000 Encounters for 2,000 Patients
_WARM_UP_S = 3


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the selected scenarios on the selected servers, report.

    Every selected server runs at once, and each scenario drives them one after the other
    (peer, stack limit, ours) before the next scenario: a ratio compares runs a minute
    apart, not the two ends of the benchmark. These shared machines drift by tens of
    percent within minutes (bench/PROFILE.md, "Eighth round"); run server after server, a
    drift between the peer's turn and ours showed up in every ratio.
    """
    args = _parser().parse_args(argv)
    require_wrk()
    chosen = [s for s in SCENARIOS if s.name in args.scenarios]
    report = Report(_meta(args))
    fixture = Fixture([ident("patient", n) for n in range(args.patients)], [])
    targets: dict[str, tuple[servers.Running, Fixture]] = {}
    with contextlib.ExitStack() as stack:
        # The peer first: its seeding through the API is the slowest step, and it fails alone.
        if PEER in args.servers:
            peer = stack.enter_context(servers.running_peer())
            seconds = servers.seed_peer(peer.root_url, _caseload(args.patients))
            report.meta["peer seeding"] = (
                f"{_count(args.patients)} resources by 100-entry transactions of PUTs in "
                f"{seconds:.0f} s"
            )
            targets[PEER] = (peer, fixture)
        if {OURS, LIMIT} & set(args.servers):
            url, seconds = servers.seed_ours(_caseload(args.patients))
            print(
                f"ours: bulk-loaded {_count(args.patients)} resources in {seconds:.1f} s",
                flush=True,
            )
            if LIMIT in args.servers:
                targets[LIMIT] = (stack.enter_context(servers.running_limit(url)), fixture)
            if OURS in args.servers:
                ours = stack.enter_context(servers.running_ours(auth=args.auth))
                enrolled = Fixture(fixture.patients, _enrol(ours, fixture.patients[: args.courses]))
                for scenario in args.profile:  # first, while the store holds only the seed
                    profile_scenario(ours, enrolled, scenario, RESULTS)
                    wait_until_idle(ours.pid)
                targets[OURS] = (ours, enrolled)
        for target, (server, data) in targets.items():
            _warm_up(target, server, data)
        for round_ in range(max(_rounds(s, args) for s in chosen)):
            for scenario in chosen:
                for target, (server, data) in targets.items():
                    if target in scenario.targets and round_ < _rounds(scenario, args):
                        _drive(report, target, server, data, scenario, args, round_)
                report.write(RESULTS)
    path = report.write(RESULTS)
    print("\n" + path.read_text())


def _parser() -> argparse.ArgumentParser:
    names = ",".join(s.name for s in SCENARIOS)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=_names, default=names.split(","), help=names)
    parser.add_argument(
        "--servers", type=_names, default=[OURS, PEER, LIMIT], help="ours,peer,limit"
    )
    parser.add_argument(
        "--connections",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[32, 8],
        help="wrk connection counts (default 32,8)",
    )
    parser.add_argument("--seconds", type=float, default=10, help="duration of each wrk run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="drive every scenario this many times over; report the median (default 1)",
    )
    parser.add_argument("--patients", type=int, default=2000, help="seeded Patients")
    parser.add_argument("--courses", type=int, default=100, help="IPT courses enrolled (ours)")
    parser.add_argument(
        "--profile",
        nargs="?",
        type=_scenarios,
        const=_scenarios("read"),
        default=[],
        help="py-spy ours under 32 connections of these scenarios first (default: read; root)",
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="ours with authentication on, as `make run` has it (the dev key; a token per "
        "request); default: off, as the peer and the stack limit have none",
    )
    return parser


def _rounds(scenario: Scenario, args: argparse.Namespace) -> int:
    rounds: int = args.rounds
    return max(rounds, scenario.rounds)


def _scenarios(value: str) -> list[Scenario]:
    by_name = {s.name: s for s in SCENARIOS}
    unknown = [name for name in _names(value) if name not in by_name]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown scenarios: {', '.join(unknown)}")
    return [by_name[name] for name in _names(value)]


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
        "data": f"{args.patients} Patients, each with a CarePlan, {_SESSIONS} Encounters and "
        f"{_PHQ9} PHQ-9 Observations; {args.courses} IPT courses enrolled through the domain API",
        "wrk": f"1 thread, {args.seconds:g} s per run, connections {args.connections}, "
        f"{args.rounds} round{'s' if args.rounds > 1 else ''}"
        + "".join(
            f"; {s.name}: {s.rounds} rounds"
            for s in SCENARIOS
            if s.rounds > args.rounds and s.name in args.scenarios
        ),
        "ours": "authentication on (dev-key JWT, `system/*.*`, as `make run`)"
        if args.auth
        else "authentication disabled (`--auth`: on, as `make run`)",
    }


def _count(patients: int) -> int:
    return patients * (2 + _SESSIONS + _PHQ9)


def _caseload(patients: int) -> Iterator[dict[str, Any]]:
    for n in range(patients):
        yield from course_resources(n, sessions=_SESSIONS, phq9=_PHQ9)


def _enrol(server: servers.Running, patients: list[str]) -> list[str]:
    """Enrol and activate a course for each of `patients` through the domain API."""
    courses = []
    with httpx.Client(
        base_url=f"{server.root_url}/ipt/v1", headers=dict(server.headers), timeout=60
    ) as client:
        for patient in patients:
            body = {
                "patient": {"reference": f"Patient/{patient}"},
                "problem_areas": ["grief"],
                "planned_sessions": 20,
                "start": "2025-01-06T09:00:00Z",
                "baseline_phq9": {"total": 18, "item9": 0},
            }
            response = client.post("/courses", json=body)
            response.raise_for_status()
            course = response.json()["id"]
            client.post(f"/courses/{course}/activate").raise_for_status()
            courses.append(course)
    return courses


def _check_fixture(server: servers.Running, target: str, fixture: Fixture) -> None:
    """Fail unless the seeded data answer as expected: a benchmark of empty results lies."""
    patient = fixture.patients[-1]  # never enrolled, so exactly what was seeded
    expected = {
        f"/fhir/Patient/{patient}": None,
        f"/fhir/Encounter?subject=Patient/{patient}&_count=20": _SESSIONS,
        f"/fhir/Observation?patient=Patient/{patient}&code={codes.LOINC}|{codes.PHQ9_TOTAL}": _PHQ9,
    }
    for path, entries in expected.items():
        if target == LIMIT and entries is not None:
            continue
        response = httpx.get(server.root_url + path, headers=dict(server.headers), timeout=60)
        found = len(response.json().get("entry", [])) if entries is not None else None
        if response.status_code != 200 or found != entries:
            raise RuntimeError(f"{target}: {path} gave {response.status_code}, {found} entries")


def _warm_up(target: str, server: servers.Running, fixture: Fixture) -> None:
    """Check the seeded data, then a few seconds of reads (caches, prepared statements)."""
    _check_fixture(server, target, fixture)
    read = SCENARIOS[0]
    run_wrk(
        server.root_url,
        read.script(fixture),
        connections=8,
        seconds=_WARM_UP_S,
        headers=server.headers,
    )


def _drive(
    report: Report,
    target: str,
    server: servers.Running,
    fixture: Fixture,
    scenario: Scenario,
    args: argparse.Namespace,
    round_: int,
) -> None:
    """Run `scenario` on `server` at each connection level, each run on a quiet server."""
    levels = scenario.connections or args.connections
    for level, connections in enumerate(levels):
        data = fixture
        if scenario.fresh_ids:  # a disjoint slice of Patients per run: all at version 1
            share = len(fixture.patients) // (len(levels) * _rounds(scenario, args))
            run = round_ * len(levels) + level
            data = Fixture(fixture.patients[run * share : (run + 1) * share], fixture.courses)
        seconds = args.seconds * scenario.seconds_factor
        result = run_wrk(
            server.root_url,
            scenario.script(data),
            connections=connections,
            seconds=seconds,
            headers=server.headers,
        )
        wait_until_idle(server.pid)
        per_second = result.ok_per_second * (scenario.resources_per_request or 1)
        report.add(Measurement(scenario.name, target, connections, result, per_second, round_))
        errors = f", {result.errors} failed" if result.errors else ""
        print(
            f"{target:>5} {scenario.name:<12} c={connections:<3} {per_second:>8,.0f}/s  "
            f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms{errors}",
            flush=True,
        )
