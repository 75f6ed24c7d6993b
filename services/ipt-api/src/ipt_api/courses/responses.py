"""Response bodies of the IPT domain API: a course as clinic apps read it.

Every value is read back from what the FHIR store holds (the CarePlan, its Goals and the
session projection), so the domain API and the FHIR API always show the same course.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ipt_core.ipt import (
    CadenceCode,
    CarePlanStatus,
    CourseType,
    GoalAchievement,
    Phase,
    PracticeStatus,
    ProblemArea,
)

__all__ = [
    "CourseList",
    "CourseSummary",
    "CourseView",
    "GoalView",
    "PracticeView",
    "RecordedSession",
    "SessionView",
]

SessionOutcomeView = Literal["attended", "no-show", "cancelled", "booked", "none"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class SessionView(_View):
    """One session of the course; attended sessions are numbered 1, 2, 3 … in time order."""

    number: int | None = Field(description="Its number among attended sessions, if attended")
    outcome: SessionOutcomeView
    start: datetime | None
    minutes: int | None
    encounter: str | None = Field(description="`Encounter/{id}`, when there is one")
    appointment: str | None = Field(description="`Appointment/{id}`, when there is one")
    link_reason: str | None = Field(description="extension | outcome-reference | auto")


class PracticeView(_View):
    """A practice assignment, numbered from 1 in the order assigned."""

    number: int
    description: str
    status: PracticeStatus


class GoalView(_View):
    """An interpersonal goal, kept as a FHIR Goal."""

    id: str | None
    text: str
    problem_area: ProblemArea
    achievement: GoalAchievement | None


class CourseSummary(_View):
    """A course in a list."""

    id: str
    patient: str
    therapist: str | None
    status: CarePlanStatus
    phase: Phase | None
    course_type: CourseType
    problem_areas: list[ProblemArea]
    planned_sessions: int | None
    start: datetime | None
    end: datetime | None
    based_on: str | None


class CourseView(_View):
    """A course with its goals, practice assignments and sessions."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2c…",
                    "identifier": "8d1e…",
                    "patient": "Patient/123",
                    "therapist": "Practitioner/t-1",
                    "status": "active",
                    "phase": "initial",
                    "course_type": "acute",
                    "problem_areas": ["role-dispute"],
                    "planned_sessions": 16,
                    "session_minutes": 50,
                    "cadence": "weekly",
                    "start": "2026-01-05T09:00:00Z",
                    "end": None,
                    "based_on": None,
                    "conditions": ["Condition/c-1"],
                    "symptom_goal": "Goal/g-1",
                    "interpersonal_goals": [],
                    "practice": [],
                    "sessions": [],
                    "sessions_attended": 0,
                    "maintenance_courses": [],
                }
            ]
        },
    )

    id: str
    identifier: str | None
    patient: str
    therapist: str | None
    status: CarePlanStatus
    phase: Phase | None = Field(description="The status engine's phase (docs/status-rules.md)")
    course_type: CourseType
    problem_areas: list[ProblemArea]
    planned_sessions: int | None
    session_minutes: int
    cadence: CadenceCode
    start: datetime
    end: datetime | None
    based_on: str | None = Field(description="The acute course a maintenance course continues")
    conditions: list[str]
    symptom_goal: str | None
    interpersonal_goals: list[GoalView]
    practice: list[PracticeView]
    sessions: list[SessionView]
    sessions_attended: int
    maintenance_courses: list[str] = Field(description="Maintenance courses based on this one")


class CourseList(_View):
    """Courses matching a query, latest start first."""

    courses: list[CourseSummary]


class RecordedSession(_View):
    """What recording a session wrote, and the session as the course now counts it."""

    course_id: str
    session: SessionView
    resources: list[str] = Field(description="Every resource written, as `Type/id`")
