"""Where a request's CPU goes: py-spy on the running service while wrk drives one scenario.

`py-spy record -f raw` writes folded stacks (`frame;frame;…;leaf count`, root first). Each
sample is charged to one component: the innermost frame that belongs to a known component,
skipping the standard library and asyncio (their time is the caller's). Exceptions: any
stack through OpenTelemetry's span-name lookup counts as that lookup (it walks the routes
a second time), and stdlib `json` counts as JSON.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections import Counter
from pathlib import Path

from bench.api.scenarios import Fixture, Scenario
from bench.api.servers import Running
from bench.api.wrk import run_wrk

__all__ = ["classify", "hottest_frames", "inclusive", "profile_scenario", "summarize"]

_SECONDS = 12
_RATE = 200
# (component, pattern on a frame's file path); the first match of the innermost frame wins.
_COMPONENTS = (
    (
        "OTel instrumentation middleware (opentelemetry-instrumentation)",
        r"/opentelemetry/instrumentation/",
    ),
    ("OTel SDK/API (spans, metrics, context)", r"/opentelemetry/"),
    ("FastAPI native telemetry (on by default)", r"/fastapi/telemetry/"),
    ("routing (Starlette/FastAPI router)", r"/starlette/routing\.py|/fastapi/routing\.py"),
    ("dependency solving (FastAPI)", r"/fastapi/dependencies/"),
    (
        "middleware (Starlette/FastAPI)",
        r"/starlette/middleware/|/starlette/_exception_handler\.py|/fastapi/middleware/"
        r"|/fastapi/_body_limit\.py",
    ),
    ("SQLAlchemy", r"/sqlalchemy/"),
    ("asyncpg", r"/asyncpg/"),
    ("JSON / pydantic", r"/json/|/pydantic/|/pydantic_core/|/orjson"),
    ("HTTP server (uvicorn)", r"/uvicorn/|/httptools/|/h11/"),
    ("anyio (threads, task groups)", r"/anyio/|/sniffio/"),
    ("Starlette requests/responses", r"/starlette/"),
    ("FastAPI (other)", r"/fastapi/"),
    ("our code: ipt_api", r"/ipt_api/"),
    ("our code: ipt_core", r"/ipt_core/"),
    ("our code: ipt_worker (in-process worker)", r"/ipt_worker/"),
)
# Inclusive shares: samples with such a frame anywhere on the stack (they overlap).
_MARKERS = (
    (
        "route matching, both walks (`*.matches` in starlette/fastapi routing)",
        r"\.matches \([^)]*(starlette|fastapi)/routing\.py",
    ),
    ("OTel span name lookup (`_get_route_details`)", r"_get_route_details"),
    ("dependency solving, our dependencies included", r"solve_dependencies"),
    ("SQLAlchemy greenlet bridge, all database work under it", r"greenlet_spawn"),
    ("pool pre-ping on checkout (`_async_ping`: BEGIN + ROLLBACK)", r"_async_ping"),
    ("the read's SELECT (prepare + execute)", r"_prepare_and_execute"),
    ("our FHIR endpoint (ipt_api/fhir/interactions.py)", r"ipt_api/fhir/interactions\.py"),
    ("the in-process worker (ipt_worker)", r"/ipt_worker/"),
)
_SPAN_NAME_LOOKUP = re.compile(r"_get_route_details|_get_default_span_details")
_STDLIB = re.compile(r"/lib/python3\.\d+/(?!site-packages)")
_FRAME = re.compile(r"\((?P<file>[^:()]+)(?::\d+)?\)$")


def classify(stack: list[str]) -> str:
    """The component one sampled stack (root first) is charged to."""
    if any(_SPAN_NAME_LOOKUP.search(frame) for frame in stack):
        return "OTel span name: second walk over the routes"
    for frame in reversed(stack):
        match = _FRAME.search(frame)
        path = match.group("file") if match else frame
        if "/json/" in path:
            return "JSON / pydantic"
        if _STDLIB.search(path):
            continue
        for component, pattern in _COMPONENTS:
            if re.search(pattern, path):
                return component
    return "event loop and stdlib (uvloop, asyncio)"


def summarize(folded: Path) -> list[tuple[str, int, float]]:
    """(component, samples, percent) for every component, largest first."""
    counts: Counter[str] = Counter()
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        counts[classify(frames)] += int(count)
    total = sum(counts.values()) or 1
    return [(name, n, 100 * n / total) for name, n in counts.most_common()]


def hottest_frames(folded: Path, top: int = 15) -> list[tuple[str, float]]:
    """The `top` innermost non-stdlib frames by share of samples ("self" time, roughly)."""
    counts: Counter[str] = Counter()
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not _STDLIB.search(f)]
        counts[_short(frames[-1]) if frames else "stdlib"] += int(count)
    total = sum(counts.values()) or 1
    return [(frame, 100 * n / total) for frame, n in counts.most_common(top)]


def inclusive(folded: Path) -> list[tuple[str, float]]:
    """(marker, percent of samples with a matching frame anywhere on the stack)."""
    counts: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        for label, pattern in _MARKERS:
            if re.search(pattern, stack):
                counts[label] += int(count)
    return [(label, 100 * counts[label] / (total or 1)) for label, _ in _MARKERS]


def _short(frame: str) -> str:
    return re.sub(r"\(.*/site-packages/", "(", re.sub(r"\(/work/[^ ]*/(src|bench)/", "(", frame))


def profile_scenario(ours: Running, fixture: Fixture, scenario: Scenario, results: Path) -> None:
    """Record the service under 32 connections of `scenario`.

    Writes `<scenario>.folded` (for a flame graph) and `profile-<scenario>.md` (the tables).
    """
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed (it is a dev dependency: `make install`)")
        return
    folded = results / f"{scenario.name}.folded"
    results.mkdir(parents=True, exist_ok=True)
    command = [
        spy,
        "record",
        "-p",
        str(ours.pid),
        "-d",
        str(_SECONDS),
        "-r",
        str(_RATE),
        "-f",
        "raw",
        "--full-filenames",
        "-o",
        str(folded),
    ]
    recorder = threading.Thread(
        target=subprocess.run, args=(command,), kwargs={"check": True, "capture_output": True}
    )
    recorder.start()
    result = run_wrk(
        ours.root_url,
        scenario.script(fixture),
        connections=32,
        seconds=_SECONDS + 2,
        headers=ours.headers,
    )
    recorder.join()
    rows = summarize(folded)
    lines = [
        f"# Profile of {scenario.label} (py-spy, {_RATE} Hz, {_SECONDS} s, 32 connections:"
        f" {result.ok_per_second:,.0f} req/s)",
        "",
        "| component | samples | share |",
        "|---|---:|---:|",
        *(f"| {name} | {n} | {share:.1f}% |" for name, n, share in rows),
        "",
        "Inclusive shares (a sample counts for every marker on its stack):",
        "",
        "| on the stack | share |",
        "|---|---:|",
        *(f"| {label} | {share:.1f}% |" for label, share in inclusive(folded)),
        "",
        "Innermost non-stdlib frame of each sample (where the time is spent, roughly):",
        "",
        "| frame | share |",
        "|---|---:|",
        *(f"| `{frame}` | {share:.1f}% |" for frame, share in hottest_frames(folded)),
        "",
    ]
    (results / f"profile-{scenario.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
