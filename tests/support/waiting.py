"""The one way tests wait for something another task, thread or process does: poll until it holds.

`poll_until` (async) and `poll_until_sync` (threads, subprocesses) look at `probe` every `every_s`
seconds, return its value once `until(value)` holds, and fail with an AssertionError naming
`what` after `within_s` seconds.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

__all__ = ["poll_until", "poll_until_sync"]

T = TypeVar("T")


def _truthy(value: object) -> bool:
    return bool(value)


@overload
async def poll_until(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool] = ...,
    within_s: float = ...,
    every_s: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def poll_until(
    probe: Callable[[], T],
    *,
    until: Callable[[T], bool] = ...,
    within_s: float = ...,
    every_s: float = ...,
    what: str = ...,
) -> T: ...


async def poll_until(
    probe: Callable[[], Any],
    *,
    until: Callable[[Any], bool] = _truthy,
    within_s: float = 5.0,
    every_s: float = 0.02,
    what: str = "the condition",
) -> Any:
    """Await `probe()` until `until` accepts its value; return that value.

    Raises:
        AssertionError: after `within_s` seconds, with the last value seen.
    """
    deadline = time.monotonic() + within_s
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {value!r}")
        await asyncio.sleep(every_s)


def poll_until_sync(
    probe: Callable[[], T],
    *,
    until: Callable[[T], bool] = _truthy,
    within_s: float = 5.0,
    every_s: float = 0.02,
    what: str = "the condition",
    give_up: Callable[[], bool] = lambda: False,
) -> T:
    """Call `probe()` until `until` accepts its value (or `give_up()` says it never will).

    Raises:
        AssertionError: after `within_s` seconds or when `give_up()` is true.
    """
    deadline = time.monotonic() + within_s
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() > deadline or give_up():
            raise AssertionError(f"timed out waiting for {what}; last value {value!r}")
        time.sleep(every_s)
