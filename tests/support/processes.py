"""A real `ipt-worker` process for the tests that kill, restart or race workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def worker_process(
    database_url: str, settings: Mapping[str, str], *, stop_timeout_s: float = 20
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m ipt_worker` on the database with extra `IPT_*` settings; SIGTERM at the end.

    A test may kill it first (SIGKILL); then there is nothing left to stop.
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
            process.wait(timeout=stop_timeout_s)
