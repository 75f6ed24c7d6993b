"""Running wrk with a Lua script and reading its result as numbers.

Every script ends with the same `done` hook, which prints one JSON line (marked) with the
request count, the error counts and the latency percentiles, so nothing parses wrk's prose.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkResult", "lua_list", "require_wrk", "run_wrk"]

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


def lua_list(values: list[str]) -> str:
    """A Lua table literal of strings."""
    return "{" + ",".join(json.dumps(value) for value in values) + "}"


def run_wrk(url: str, script: str, *, connections: int, seconds: float) -> WrkResult:
    """Drive `url` with `script` for `seconds` over `connections` keep-alive connections.

    One wrk thread: it sustains far more than any server here and leaves the second core
    to the server under test.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script + _DONE)
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
