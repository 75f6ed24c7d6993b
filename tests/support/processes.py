"""Stopping a child process the tests or benchmarks started: SIGTERM, then SIGKILL if it hangs."""

from __future__ import annotations

import subprocess

__all__ = ["stop_process"]


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Ask `process` to stop (SIGTERM); kill it if it has not ended after `timeout_s`."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
