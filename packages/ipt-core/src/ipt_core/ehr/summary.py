"""The course summary a completed course leaves in the EHR: a DocumentReference (LOINC 34904-3)
with a readable text/markdown attachment: sessions, PHQ-9 trajectory, goals reached.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ipt_core.instants import format_instant
from ipt_core.ipt.codes import LOINC, PROGRESS_NOTE

__all__ = [
    "SUMMARY_KIND",
    "CourseSummary",
    "GoalLine",
    "SessionLine",
    "summary_document",
    "summary_id",
    "summary_markdown",
]

SUMMARY_KIND: Final = "course-summary"


@dataclass(frozen=True)
class SessionLine:
    """One session of the course."""

    start: datetime | None
    status: str
    minutes: int | None


@dataclass(frozen=True)
class GoalLine:
    """One goal of the course and how far it got."""

    description: str
    achievement: str | None


@dataclass(frozen=True)
class CourseSummary:
    """What the summary says about a course."""

    course_id: str
    patient_id: str
    title: str
    period_start: datetime | None
    period_end: datetime | None
    sessions: Sequence[SessionLine]
    phq9: Sequence[tuple[datetime, int]]
    goals: Sequence[GoalLine]


def summary_id(course_id: str) -> str:
    """The id our sync identifier gives the summary of `course_id` (stable across pushes)."""
    return f"ipt-summary-{course_id}"


def summary_markdown(summary: CourseSummary) -> str:
    """The attachment's text: readable by a clinician in any EHR viewer."""
    lines = [f"# {summary.title}", ""]
    period = f"{_day(summary.period_start)} to {_day(summary.period_end)}"
    lines += [f"Course period: {period}", "", f"## Sessions ({len(summary.sessions)})", ""]
    lines += [
        f"- {_day(s.start)}: {s.status}" + (f", {s.minutes} min" if s.minutes else "")
        for s in summary.sessions
    ] or ["- none recorded"]
    lines += ["", "## PHQ-9 trajectory", ""]
    lines += [f"- {_day(when)}: {score}" for when, score in summary.phq9] or ["- no scores"]
    reached = [g for g in summary.goals if g.achievement in {"achieved", "sustaining"}]
    lines += ["", f"## Goals reached ({len(reached)} of {len(summary.goals)})", ""]
    lines += [f"- {g.description}: {g.achievement or 'not assessed'}" for g in summary.goals] or [
        "- no goals recorded"
    ]
    return "\n".join(lines) + "\n"


def summary_document(summary: CourseSummary, now: datetime) -> dict[str, Any]:
    """The DocumentReference (references local: the push rewrites them for the EHR)."""
    text = summary_markdown(summary)
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": LOINC, "code": PROGRESS_NOTE, "display": "Progress note"}]},
        "subject": {"reference": f"Patient/{summary.patient_id}"},
        "date": format_instant(now),
        "description": "Interpersonal psychotherapy course summary",
        "content": [
            {
                "attachment": {
                    "contentType": "text/markdown",
                    "language": "en",
                    "data": base64.b64encode(text.encode()).decode(),
                    "title": summary.title,
                }
            }
        ],
        "context": {"related": [{"reference": f"CarePlan/{summary.course_id}"}]},
    }


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "open"
