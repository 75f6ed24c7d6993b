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
_NAMES = tuple(field.name for field in fields(CourseStatus))  # in declaration order
_PUBLIC_NAMES = tuple(name for name in _NAMES if name not in INTERNAL_FIELDS)


def status_json(status: CourseStatus, *, internal: bool = False) -> dict[str, Any]:
    """Return the status as a JSON-ready dict (with `next_transition_at` when `internal`)."""
    rendered: dict[str, Any] = {}
    for name in _NAMES if internal else _PUBLIC_NAMES:
        value = getattr(status, name)
        rendered[name] = format_instant(value) if isinstance(value, datetime) else value
    return rendered
