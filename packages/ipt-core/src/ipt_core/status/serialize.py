"""A course status as JSON: field names exactly as docs/status-rules.md, instants in UTC."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from ipt_core.instants import format_instant
from ipt_core.status._course_status import CourseStatus

__all__ = ["INTERNAL_FIELDS", "status_json"]

# Fields that steer the engine but are not part of what dashboards see change.
INTERNAL_FIELDS = frozenset({"next_transition_at"})


def status_json(status: CourseStatus, *, internal: bool = False) -> dict[str, Any]:
    """Return the status as a JSON-ready dict (with `next_transition_at` when `internal`)."""
    rendered: dict[str, Any] = {}
    for field in fields(status):
        if field.name in INTERNAL_FIELDS and not internal:
            continue
        value = getattr(status, field.name)
        rendered[field.name] = format_instant(value) if isinstance(value, datetime) else value
    return rendered
