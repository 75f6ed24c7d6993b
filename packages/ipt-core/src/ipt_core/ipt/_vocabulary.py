"""Displays and definitions of the project's own codes (docs/ipt-model.md).

One table per code system; the CodeSystem resources and every coding the mappings write
take their displays from here, so a display is never spelled twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

Concepts = Mapping[str, tuple[str, str]]  # code -> (display, definition)

IPT_THERAPY_DISPLAY: Final = "Interpersonal psychotherapy"  # SNOMED CT 443730003

PROBLEM_AREA_CONCEPTS: Final[Concepts] = {
    "grief": (
        "Grief",
        "Complicated bereavement: grief after the death of a significant person that is "
        "unresolved, delayed or prolonged.",
    ),
    "role-transition": (
        "Role transition",
        "Difficulty adapting to a change of life role: the start or end of a relationship "
        "or marriage, a new diagnosis, a new job, a move.",
    ),
    "role-dispute": (
        "Role dispute",
        "A struggle with a significant other over non-reciprocal expectations about the "
        "relationship.",
    ),
    "interpersonal-deficits": (
        "Interpersonal deficits",
        "Social isolation: the absence of relationships that sustain the patient.",
    ),
}

COURSE_TYPE_CONCEPTS: Final[Concepts] = {
    "acute": (
        "Acute course",
        "A time-limited acute course of IPT (by default 20 weekly sessions) treating the "
        "current episode.",
    ),
    "maintenance": (
        "Maintenance course",
        "Maintenance IPT (IPT-M): a separate contract of monthly sessions after an acute "
        "course, to prevent relapse or recurrence.",
    ),
}

PHASE_CONCEPTS: Final[Concepts] = {
    "intake": ("Intake", "Intake interview: the treatment outline is not yet agreed."),
    "initial": (
        "Initial phase",
        "The first sessions: diagnosis, interpersonal inventory, problem area, contract.",
    ),
    "middle": ("Middle phase", "Work on the problem area, with social practice."),
    "termination": (
        "Termination phase",
        "The last sessions: review of gains, relapse plan, decision on maintenance.",
    ),
    "acute-complete": (
        "Acute course complete",
        "Every planned session was attended; the course is not yet closed.",
    ),
    "maintenance": ("Maintenance", "The patient is in a maintenance course of monthly sessions."),
    "completed": ("Completed", "The course was completed."),
    "stopped": ("Stopped", "The course was stopped before it was completed."),
    "on-hold": ("On hold", "The course is paused."),
}

ACTIVITY_CONCEPTS: Final[Concepts] = {
    "social-practice": (
        "Social practice",
        "A practice assignment: taking part in a social activity that was once stressful or "
        "painful, to practise new ways of coping.",
    ),
}


def display_of(concepts: Concepts, code: str) -> str:
    """The display of `code` in a concept table."""
    return concepts[code][0]
