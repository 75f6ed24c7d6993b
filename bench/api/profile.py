"""Where a read's CPU goes: py-spy on the running service while wrk drives reads.

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

from bench.api.scenarios import SCENARIOS, Fixture
from bench.api.servers import Running
from bench.api.wrk import run_wrk

__all__ = ["classify", "profile_reads", "summarize"]

_SECONDS = 12
_RATE = 200
# (component, pattern on a frame's file path); the first match of the innermost frame wins.
_COMPONENTS = (
    ("OTel instrumentation", r"/opentelemetry/"),
    ("routing (Starlette/FastAPI router)", r"/starlette/routing\.py|/fastapi/routing\.py"),
    ("dependency solving (FastAPI)", r"/fastapi/dependencies/"),
    ("middleware (Starlette)", r"/starlette/middleware/|/starlette/_exception_handler\.py"),
    ("SQLAlchemy", r"/sqlalchemy/"),
    ("greenlet bridge", r"/greenlet/"),
    ("asyncpg", r"/asyncpg/"),
    ("JSON / pydantic", r"/json/|/pydantic/|/pydantic_core/|/orjson"),
    ("HTTP server (uvicorn)", r"/uvicorn/|/httptools/|/h11/"),
    ("Starlette requests/responses", r"/starlette/"),
    ("FastAPI (other)", r"/fastapi/"),
    ("our code: ipt_api", r"/ipt_api/"),
    ("our code: ipt_core", r"/ipt_core/"),
    ("our code: ipt_worker (in-process worker)", r"/ipt_worker/"),
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
    return "other (event loop, stdlib, idle callbacks)"


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


def profile_reads(ours: Running, fixture: Fixture, results: Path) -> None:
    """Record the service under 32 connections of reads; write read.folded and profile.md."""
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed (it is a dev dependency: `make install`)")
        return
    folded = results / "read.folded"
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
        "-o",
        str(folded),
    ]
    recorder = threading.Thread(
        target=subprocess.run, args=(command,), kwargs={"check": True, "capture_output": True}
    )
    recorder.start()
    result = run_wrk(
        ours.root_url, SCENARIOS[0].script(fixture), connections=32, seconds=_SECONDS + 2
    )
    recorder.join()
    rows = summarize(folded)
    lines = [
        f"# Read path profile (py-spy, {_RATE} Hz, {_SECONDS} s, 32 connections of"
        f" `GET /fhir/Patient/{{id}}`: {result.ok_per_second:,.0f} req/s)",
        "",
        "| component | samples | share |",
        "|---|---:|---:|",
        *(f"| {name} | {n} | {share:.1f}% |" for name, n, share in rows),
        "",
    ]
    (results / "profile.md").write_text("\n".join(lines))
    print("\n".join(lines))
