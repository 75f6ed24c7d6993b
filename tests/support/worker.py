"""The worker as a real process (`python -m ipt_worker`) on the test database.

Tests that kill, race or restart workers need separate processes: the worker's liveness lock
and leases live in its own database sessions (docs/architecture.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["running_worker"]


@contextmanager
def running_worker(
    database_url: str, settings: Mapping[str, str], *, stop_within_s: float = 20
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process with `settings` (IPT_* variables) over this environment.

    On exit a worker still running gets SIGTERM and `stop_within_s` seconds to stop.
    """
    env = {**os.environ, "DATABASE_URL": database_url.replace("+asyncpg", ""), **settings}
    process = subprocess.Popen(
        [sys.executable, "-m", "ipt_worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=stop_within_s)
