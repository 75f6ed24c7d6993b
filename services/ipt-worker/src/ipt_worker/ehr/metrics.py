"""EHR sync metrics. Labels are endpoint names, directions, types and outcomes: never ids."""

from __future__ import annotations

from typing import Final

from opentelemetry import metrics

__all__ = ["count_failure", "count_synced", "report_queue"]

_meter = metrics.get_meter("ipt_worker.ehr")
_queue: Final = _meter.create_gauge("ipt.ehr.push.queue", description="Pending push items")
_dead: Final = _meter.create_gauge("ipt.ehr.push.dead_letters", description="Dead letters")
_lag: Final = _meter.create_gauge(
    "ipt.ehr.lag", unit="s", description="Age of the oldest pending push, or since the last pull"
)
_failures: Final = _meter.create_counter(
    "ipt.ehr.failures", description="Failed EHR sync attempts, by endpoint and outcome"
)
_synced: Final = _meter.create_counter(
    "ipt.ehr.synced", description="Resources pushed to or pulled from an EHR"
)


def report_queue(
    endpoint: str, pending: int, dead: int, push_lag_s: float, pull_lag_s: float
) -> None:
    """Set the queue gauges and the lag of both directions."""
    _queue.set(pending, {"endpoint": endpoint})
    _dead.set(dead, {"endpoint": endpoint})
    _lag.set(push_lag_s, {"endpoint": endpoint, "direction": "push"})
    _lag.set(pull_lag_s, {"endpoint": endpoint, "direction": "pull"})


def count_failure(endpoint: str, direction: str, outcome: str) -> None:
    """One failed attempt (`outcome`: unavailable, rejected, conflict, auth, …)."""
    _failures.add(1, {"endpoint": endpoint, "direction": direction, "outcome": outcome})


def count_synced(endpoint: str, direction: str, resource_type: str, outcome: str) -> None:
    """One resource pushed, pulled or skipped (`outcome`: written, skipped, unchanged)."""
    _synced.add(
        1,
        {"endpoint": endpoint, "direction": direction, "type": resource_type, "outcome": outcome},
    )
