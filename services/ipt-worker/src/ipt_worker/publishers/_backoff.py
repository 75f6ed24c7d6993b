"""When to try a failed webhook delivery again: exponential backoff with jitter, or Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from ipt_core.backoff import backoff_ceiling_s

__all__ = ["DeliveryPolicy", "retry_after_s", "retry_delay_s"]

_RETRY_AFTER_CAP_S: Final = 86_400.0


@dataclass(frozen=True)
class DeliveryPolicy:
    """How the delivery loop treats endpoints (from the worker's settings)."""

    timeout_s: float = 10.0
    concurrency: int = 8
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 3600.0
    max_failures: int = 50  # consecutive failed attempts before the endpoint is disabled
    poll_interval_s: float = 1.0


def retry_delay_s(
    policy: DeliveryPolicy, attempts: int, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait after the `attempts`-th failed attempt.

    A receiver's `Retry-After` is obeyed as given (up to a day, against absurd values). Otherwise
    the delay doubles per attempt, and a random half of it is dropped ("equal jitter") so that
    endpoints recovering from an outage are not hit by every queue at the same instant.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), _RETRY_AFTER_CAP_S)
    ceiling = backoff_ceiling_s(
        attempts, initial_s=policy.backoff_initial_s, max_s=policy.backoff_max_s
    )
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def retry_after_s(header: str | None, now: datetime) -> float | None:
    """Parse `Retry-After`: delay-seconds or an HTTP date; None when absent or unreadable."""
    if not header:
        return None
    value = header.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(float((moment - now).total_seconds()), 0.0)
