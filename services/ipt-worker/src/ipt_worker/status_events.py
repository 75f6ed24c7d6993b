"""Which events a status change emits, as CloudEvent envelopes (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ipt_core.events import cloud_event
from ipt_core.telemetry import current_traceparent

__all__ = ["status_events"]

Snapshot = dict[str, Any]
# Event type → does it fire, given the previous (None for a new course) and current status.
_TRANSITIONS: dict[str, Callable[[Snapshot | None, Snapshot], bool]] = {
    "ipt.course.phase.changed": lambda old, new: old is None or old["phase"] != new["phase"],
    "ipt.course.engagement.changed": lambda old, new: (
        (old or {}).get("engagement") != new["engagement"]
    ),
    "ipt.course.maintenance.due": lambda old, new: (
        new["maintenance_due"] and not (old or {}).get("maintenance_due", False)
    ),
    "ipt.course.completed": lambda old, new: (
        new["phase"] == "completed" and (old or {}).get("phase") != "completed"
    ),
    "ipt.outcome.response": lambda old, new: (
        new["response"] and not (old or {}).get("response", False)
    ),
    "ipt.outcome.remission": lambda old, new: (
        new["remission"] and not (old or {}).get("remission", False)
    ),
}


def status_events(
    course_id: str,
    previous: Snapshot | None,
    current: Snapshot,
    *,
    first_sequence: int,
    now: datetime,
    version: int | None = None,
    traceparent: str | None = None,
) -> list[dict[str, Any]]:
    """Return the events of a status change: `status.changed` first, then each transition.

    `version` is the stored status version the change created; `status.changed` carries it
    so a consumer that started from the `/ipt/v1/statuses` snapshot can skip what it has.
    `traceparent` is the course's recompute span (the current span's when not given).
    """
    types = ["ipt.course.status.changed"]
    types += [type_ for type_, fires in _TRANSITIONS.items() if fires(previous, current)]
    changed = {
        **current,
        "previous_phase": (previous or {}).get("phase"),
        "previous_engagement": (previous or {}).get("engagement"),
        **({"version": version} if version is not None else {}),
    }
    if traceparent is None:  # the recompute span, child of the causing write
        traceparent = current_traceparent()
    return [
        cloud_event(
            type_=type_,
            subject=f"CarePlan/{course_id}",
            partition_key=course_id,
            sequence=first_sequence + offset,
            time=now,
            traceparent=traceparent,
            data=changed
            if type_ == "ipt.course.status.changed"
            else {
                "course_id": course_id,
                "phase": current["phase"],
                "engagement": current["engagement"],
                "previous_phase": (previous or {}).get("phase"),
            },
        )
        for offset, type_ in enumerate(types)
    ]
