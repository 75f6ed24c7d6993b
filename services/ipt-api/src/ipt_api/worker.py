"""The worker's loops inside the API process, for single-process deployments and `make run`.

They run on a thread of their own, with their own event loop and connections, not as tasks
on the API's loop. An event loop shares itself by turns, not by CPU: at full write rate the
requests took most of the turns and webhook deliveries fell behind without bound (p99 11 s at
~700 creates/s). Two threads share the interpreter by time instead: whichever waits is handed
it after the switch interval. At Python's default of 5 ms the loops still lost (a delivery's
many short steps each waited up to 5 ms), so while they run the interval is 0.2 ms: webhook
p99 0.3-1.4 s at ~450 creates/s, the API's creates unchanged when nothing is delivered
(docs/architecture.md, "One process").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import uvloop

from ipt_core.db.engine import create_engine
from ipt_core.ehr import EhrEndpoint
from ipt_core.settings import CoreSettings
from ipt_worker.runner import run_worker_loops
from ipt_worker.settings import WorkerSettings

__all__ = ["THREAD_NAME", "EmbeddedWorker", "embedded_worker", "worker_settings_of"]

_log = logging.getLogger(__name__)
_SWITCH_INTERVAL_S: Final = 0.0002
THREAD_NAME: Final = "ipt-worker-loops"


def worker_settings_of(process: CoreSettings) -> WorkerSettings:
    """The embedded loops' settings: the worker's own from the environment, and the settings
    every process shares (database, outbound allow-list, secret keys…) as the API was given
    them, so the loops never run under other rules than the API that hosts them.
    """
    shared = {name: getattr(process, name) for name in CoreSettings.model_fields}
    return WorkerSettings(**shared)


@dataclass
class EmbeddedWorker:
    """The worker's loops running on their thread, and the means to stop them."""

    _thread: threading.Thread
    _loop: asyncio.AbstractEventLoop
    _stop: asyncio.Event
    _done: concurrent.futures.Future[None]
    _switch_interval_s: float  # the process's own, given back at stop

    async def stop(self) -> None:
        """Ask the loops to stop and wait for their current work to finish.

        Raises what ended the loops, if they failed before being asked to stop.
        """
        with contextlib.suppress(RuntimeError):  # their loop is closed: they ended already
            self._loop.call_soon_threadsafe(self._stop.set)
        try:
            await asyncio.wrap_future(self._done)
        finally:
            if self._done.done():  # its last step: this join waits only for it to return
                self._thread.join()
            sys.setswitchinterval(self._switch_interval_s)


def embedded_worker(
    database_url: str,
    clock: Callable[[], datetime],
    *,
    settings: WorkerSettings,
    ehr_endpoints: Sequence[EhrEndpoint],
) -> EmbeddedWorker:
    """Start the recompute, relay, EHR sync and export loops on a thread of their own.

    They connect to `database_url` with an engine of their own (asyncpg connections belong to
    the event loop that opened them), under `settings` (`worker_settings_of` the API's).
    """
    loop = uvloop.new_event_loop()  # as uvicorn gives the API
    stop = asyncio.Event()
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    async def work() -> None:
        engine = create_engine(database_url, pool_size=settings.database_pool_size)
        try:
            await run_worker_loops(engine, settings, clock, ehr_endpoints, stop)
        finally:
            await engine.dispose()

    def thread() -> None:
        try:
            with asyncio.Runner(loop_factory=lambda: loop) as runner:
                runner.run(work())
        except BaseException as error:  # handed to `stop()`, which raises it
            # Said now, not only at shutdown; the type alone: an error's text may quote data.
            _log.error("the worker loops ended: %s", type(error).__name__)
            done.set_exception(error)
        else:
            done.set_result(None)

    runs = threading.Thread(target=thread, name=THREAD_NAME, daemon=True)
    worker = EmbeddedWorker(runs, loop, stop, done, sys.getswitchinterval())
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    runs.start()
    return worker
