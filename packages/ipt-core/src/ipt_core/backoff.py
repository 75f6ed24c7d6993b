"""The one exponential backoff formula: how long to wait after a failed attempt.

Used by the recompute queue (a course whose computation failed) and by webhook deliveries
(an endpoint that did not answer 2xx); docs/architecture.md describes both retry paths.
"""

from __future__ import annotations

__all__ = ["backoff_ceiling_s"]

_MAX_EXPONENT = 32  # 2**32 s is far beyond any cap; keeps the float finite for absurd counts


def backoff_ceiling_s(failures: int, *, initial_s: float, max_s: float) -> float:
    """Seconds to wait after `failures` consecutive failures: `initial_s` doubled each time.

    The first failure waits `initial_s`, the second twice that, and so on up to `max_s`.
    Callers that want jitter take a random part of this ceiling.

    Args:
        failures: Consecutive failed attempts so far (values below 1 count as 1).
        initial_s: The wait after the first failure.
        max_s: The longest wait.
    """
    exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
    return float(min(max_s, initial_s * 2.0**exponent))
