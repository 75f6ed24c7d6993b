"""Running wrk with a Lua script and reading its result as numbers.

Every script ends with the same `done` hook, which prints one JSON line (marked) with the
request count, the error counts and the latency percentiles, so nothing parses wrk's prose.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkResult", "lua_list", "require_wrk", "run_wrk", "wait_until_idle", "with_headers"]

_MARK = "BENCH-RESULT "
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
    .. '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    "MARK", summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
""".replace("MARK", _MARK)


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency and failures."""

    requests: int
    seconds: float
    errors: int  # non-2xx/3xx answers, timeouts and socket errors
    p50_ms: float
    p99_ms: float

    @property
    def ok_per_second(self) -> float:
        """Successful requests per second."""
        return max(0, self.requests - self.errors) / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    """Return wrk's path, or stop with how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu), "
            "`brew install wrk` (macOS); `make bench` installs it when run as root"
        )
    return path


def with_headers(headers: Mapping[str, str]) -> str:
    """A Lua prelude putting `headers` on every request: the static one (`wrk.headers`) and
    those a script builds with `wrk.format`, whose own header table would leave them out."""
    if not headers:
        return ""
    table = "{" + ",".join(f"[{json.dumps(k)}]={json.dumps(v)}" for k, v in headers.items()) + "}"
    return (
        f"local extra = {table}\n"
        "for name, value in pairs(extra) do wrk.headers[name] = value end\n"
        "local format = wrk.format\n"
        "wrk.format = function(method, path, headers, body)\n"
        "  headers = headers or wrk.headers\n"
        "  for name, value in pairs(extra) do headers[name] = value end\n"
        "  return format(method, path, headers, body)\n"
        "end\n"
    )


def lua_list(values: list[str]) -> str:
    """A Lua table literal of strings."""
    return "{" + ",".join(json.dumps(value) for value in values) + "}"


def run_wrk(
    url: str,
    script: str,
    *,
    connections: int,
    seconds: float,
    headers: Mapping[str, str] | None = None,
) -> WrkResult:
    """Drive `url` with `script` for `seconds` over `connections` keep-alive connections.

    One wrk thread: it sustains far more than any server here and leaves the second core
    to the server under test. `headers` go on every request the script makes.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(with_headers(headers or {}) + script + _DONE)
    try:
        finished = subprocess.run(
            [
                require_wrk(),
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",
                "-s",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        Path(handle.name).unlink()
    lines = [x for x in finished.stdout.splitlines() if x.startswith(_MARK)]
    if finished.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed: {finished.stderr or finished.stdout}")
    line = lines[0]
    raw = json.loads(line.removeprefix(_MARK))
    errors = sum(raw[key] for key in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        errors=errors,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )


def wait_until_idle(pid: int, *, busy_share: float = 0.15, limit_s: float = 120) -> None:
    """Wait until process `pid` uses less than `busy_share` of a core (over half a second).

    wrk stops counting at the end of a run, but the server still finishes the requests it
    has accepted; the next run must not be charged for them.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + limit_s
    before = _cpu_ticks(pid)
    while before is not None and time.monotonic() < deadline:
        time.sleep(0.5)
        after = _cpu_ticks(pid)
        if after is None or (after - before) / ticks < busy_share * 0.5:
            return
        before = after
    if before is not None:
        print(f"warning: process {pid} still busy after {limit_s:.0f} s", flush=True)


def _cpu_ticks(pid: int) -> int | None:
    """User + system CPU ticks of `pid` and its children that were waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
