"""Why a course's status changed, for its status history row (docs/analytics.md).

The history row is written by the recompute loop in the same transaction as `course_status`
and the status events (`ipt_core.status.repository.save_statuses`), so the history never
misses or invents a version, even after a crash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ipt_core.status.repository import Cause

__all__ = ["Cause", "change_cause"]


def change_cause(previous: Any, now: datetime) -> Cause:
    """Why the status changed: a new course, a time-driven transition, or changed facts.

    `previous` is the stored `course_status` row (or None). A change computed at or after the
    previous status's `next_transition_at` is attributed to time (overdue, maintenance due);
    otherwise a write changed the course's facts.
    """
    if previous is None:
        return "created"
    due = getattr(previous, "next_transition_at", None)
    return "time" if due is not None and due <= now else "facts"
