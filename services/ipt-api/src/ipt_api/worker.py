"""The worker's loops beside the API, for single-process deployments and `make run`.

They run in child processes of the API's (`IPT_RUN_WORKER_PROCESSES`, 2), started and
stopped with the app, not on a thread of the API's process. On a thread they shared the
interpreter with the API: each turn of either event loop gave it up and took it back, and to
keep webhook deliveries from falling behind the interpreter's switch interval had to drop to
0.2 ms. Under a steady stream of creates the API's thread then waited for the interpreter in
~17% of its samples and blocked ~0.3 times per create, and the API sustained ~450 creates/s
with a webhook subscriber (bench/PROFILE.md, "Eighteenth round"). A process has an
interpreter of its own; the operating system shares the cores. Each child runs what
`ipt-worker` runs (`ipt_worker.serve`), with the settings the API was given, and
the children share the work as the chart's worker replicas do: one leads the relay, the
deliveries and recomputes are claimed (docs/architecture.md, "One command"). Two, because
one process delivers fewer webhooks a second than the API can create on two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from typing import Final

from ipt_core.ehr import EhrEndpoint
from ipt_core.settings import CoreSettings
from ipt_worker.serve import serve
from ipt_worker.settings import WorkerSettings

__all__ = ["WorkerProcess", "start_worker_processes"]

_log = logging.getLogger(__name__)
_PROCESS_NAME: Final = "ipt-worker-loops"
# A fresh interpreter, not a fork: a fork would copy the API's event loop, threads and
# sockets into the child.
_SPAWN: Final = multiprocessing.get_context("spawn")
_RESTART_S: Final = 1.0  # after a child ended unasked, before it is started again
_STOP_S: Final = 10.0  # for a child's current work to finish, before it is killed


def _worker_settings(process: CoreSettings, database_url: str) -> WorkerSettings:
    """A child's settings: the worker's own from the environment, and the settings every
    process shares (outbound allow-list, secret keys…) as the API was given them, against
    `database_url`, so the loops never run under other rules than the API that hosts them.
    """
    shared = {name: getattr(process, name) for name in CoreSettings.model_fields}
    return WorkerSettings(**{**shared, "database_url": database_url})


class WorkerProcess:
    """The worker's loops in one child process, started again when it ends unasked."""

    def __init__(self, settings: WorkerSettings, endpoints: tuple[EhrEndpoint, ...]) -> None:
        """Run the loops under `settings`, syncing `endpoints` (their secrets included)."""
        self._settings = settings
        self._endpoints = endpoints
        self._process = self._start()
        self._stopping = False
        self._supervisor = asyncio.create_task(self._supervise())

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        return self._process.pid

    def _start(self) -> BaseProcess:
        process = _SPAWN.Process(
            target=_child, args=(self._settings, self._endpoints), name=_PROCESS_NAME, daemon=True
        )
        process.start()
        return process

    async def _supervise(self) -> None:
        while True:
            await _ended(self._process)
            if self._stopping:
                return
            # The exit code only: what the child logged before it ended says why.
            _log.error(
                "the worker process ended (exit code %s); starting it again in %.0f s",
                self._process.exitcode,
                _RESTART_S,
            )
            await asyncio.sleep(_RESTART_S)
            self._process = self._start()

    async def stop(self) -> None:
        """Ask the child to stop (SIGTERM) and wait for its current work to finish; kill it
        if it has not within 10 s."""
        self._stopping = True
        self._supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._supervisor
        process = self._process
        process.terminate()
        try:
            await asyncio.wait_for(_ended(process), _STOP_S)
        except TimeoutError:
            _log.error("the worker process did not stop within %.0f s; killed", _STOP_S)
            process.kill()
            await _ended(process)
        process.close()


def start_worker_processes(
    database_url: str,
    count: int,
    *,
    settings: CoreSettings,
    ehr_endpoints: Sequence[EhrEndpoint],
) -> list[WorkerProcess]:
    """Start `count` child processes running the recompute, relay, EHR sync and export loops
    against `database_url`, under the API's `settings` (`_worker_settings`)."""
    child_settings = _worker_settings(settings, database_url)
    return [WorkerProcess(child_settings, tuple(ehr_endpoints)) for _ in range(count)]


async def _ended(process: BaseProcess) -> None:
    """Wait until `process` has ended and is reaped (its exit code set)."""
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    sentinel = process.sentinel

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(sentinel, readable)
    try:
        await ended  # without a thread: the sentinel becomes readable as the child exits
    finally:
        loop.remove_reader(sentinel)
    # It may not be reaped yet (no exit code): the join that reaps it is a moment's wait.
    await asyncio.to_thread(process.join)


def _child(settings: WorkerSettings, endpoints: tuple[EhrEndpoint, ...]) -> None:
    """A child's body: the worker's loops until asked to stop or the API's process ends."""
    parent = multiprocessing.parent_process()
    serve(settings, endpoints, parent=parent.sentinel if parent is not None else None)
