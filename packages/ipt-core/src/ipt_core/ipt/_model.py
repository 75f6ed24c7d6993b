"""The IPT domain model in the domain's words: outline, course, session, PHQ-9 (docs/ipt-model.md).

References to resources whose type varies or that the domain names as a person (patient,
therapist, condition, session) are relative FHIR references (`Patient/123`); links to our
own resources of a fixed type (course, goal, encounter, appointment) are plain ids.
Every instant is an aware datetime normalised to UTC.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from ipt_core.ipt import codes

DEFAULT_PLANNED_SESSIONS = 20
DEFAULT_SESSION_MINUTES = 60
MIN_PLANNED_SESSIONS = 6
MAX_PLANNED_SESSIONS = 30
MAX_PROBLEM_AREAS = 2

# Characters FHIR strings and XHTML narrative cannot carry (C0 controls, surrogates).
_UNREPRESENTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ID = r"[A-Za-z0-9\-.]{1,64}"


def _representable(text: str) -> str:
    if _UNREPRESENTABLE.search(text):
        raise ValueError("text holds characters FHIR cannot carry")
    return text


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _reference(*types: str) -> StringConstraints:
    return StringConstraints(pattern=rf"^({'|'.join(types)})/{_ID}$")


FhirId = Annotated[str, StringConstraints(pattern=rf"^{_ID}$")]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_representable)
]
Instant = Annotated[AwareDatetime, AfterValidator(_utc)]
PatientReference = Annotated[str, _reference("Patient")]
TherapistReference = Annotated[str, _reference("Practitioner", "PractitionerRole")]
ConditionReference = Annotated[str, _reference("Condition")]
SessionReference = Annotated[str, _reference("Encounter", "Appointment")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InterpersonalGoal(_Frozen):
    """An intended change in the patient's relationships, e.g. "see my sister weekly"."""

    text: Text
    problem_area: codes.ProblemArea
    id: FhirId | None = None
    achievement: codes.GoalAchievement | None = None  # set by the clinician


class PracticeAssignment(_Frozen):
    """A social activity, once stressful, that the patient is urged to practise."""

    description: Text
    status: codes.PracticeStatus = "not-started"


class TreatmentOutline(_Frozen):
    """What patient and therapist agree at the end of intake: focus, goals, number of sessions.

    `based_on` is the id of the acute course a maintenance course continues.
    """

    patient: PatientReference
    therapist: TherapistReference | None = None
    conditions: tuple[ConditionReference, ...] = ()
    problem_areas: tuple[codes.ProblemArea, ...] = Field(min_length=1, max_length=MAX_PROBLEM_AREAS)
    course_type: codes.CourseType = "acute"
    planned_sessions: int | None = Field(
        default=DEFAULT_PLANNED_SESSIONS, ge=MIN_PLANNED_SESSIONS, le=MAX_PLANNED_SESSIONS
    )
    session_minutes: int = Field(default=DEFAULT_SESSION_MINUTES, ge=1)
    cadence: codes.CadenceCode = (
        "weekly"  # when not given: weekly for acute, monthly for maintenance
    )
    start: Instant
    interpersonal_goals: tuple[InterpersonalGoal, ...] = ()
    based_on: FhirId | None = None
    identifier: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_cadence(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("cadence") is None:
            monthly = data.get("course_type") == "maintenance"
            return {**data, "cadence": "monthly" if monthly else "weekly"}
        return data

    @model_validator(mode="after")
    def _fits_course_type(self) -> Self:
        if len(set(self.problem_areas)) != len(self.problem_areas):
            raise ValueError("problem areas must not repeat")
        if self.course_type == "acute" and self.planned_sessions is None:
            raise ValueError("an acute course plans a number of sessions")
        if (self.course_type == "maintenance") != (self.based_on is not None):
            raise ValueError("a maintenance course, and only one, is based on an acute course")
        return self


class Course(TreatmentOutline):
    """A course of IPT as kept in the CarePlan: the outline plus what happened since."""

    id: FhirId
    status: codes.CarePlanStatus = "draft"
    end: Instant | None = None
    practice_assignments: tuple[PracticeAssignment, ...] = ()
    symptom_goal_id: FhirId | None = None
    session_references: tuple[SessionReference, ...] = ()
    phase: codes.Phase | None = None  # derived; written back by the status engine

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.end is not None and self.end < self.start:
            raise ValueError("a course cannot end before it starts")
        return self

    @classmethod
    def from_outline(
        cls,
        outline: TreatmentOutline,
        *,
        course_id: str,
        symptom_goal_id: str | None = None,
        interpersonal_goal_ids: Sequence[str] = (),
    ) -> Course:
        """Start a draft course from an agreed outline, naming its CarePlan and Goals.

        Args:
            outline: the treatment outline of the intake.
            course_id: the id the course's CarePlan gets.
            symptom_goal_id: the id of the symptom Goal.
            interpersonal_goal_ids: ids for the outline's interpersonal goals, in order;
                goals beyond the list keep the id they have.
        """
        goals = [goal.model_dump() for goal in outline.interpersonal_goals]
        for goal, goal_id in zip(goals, interpersonal_goal_ids, strict=False):
            goal["id"] = goal_id
        return cls(
            **{**outline.model_dump(), "interpersonal_goals": goals},
            id=course_id,
            symptom_goal_id=symptom_goal_id,
        )


class Session(_Frozen):
    """One IPT session: attended (Encounter) or booked, missed or cancelled (Appointment)."""

    patient: PatientReference
    start: Instant
    minutes: int | None = Field(default=DEFAULT_SESSION_MINUTES, ge=1)
    outcome: codes.RecordedOutcome
    mode: codes.SessionMode = "in-person"
    course_id: FhirId | None = None
    therapist: TherapistReference | None = None
    encounter_id: FhirId | None = None
    appointment_id: FhirId | None = None


class Phq9(_Frozen):
    """A PHQ-9 total score, with item 9 (thoughts of self-harm) when it was answered."""

    patient: PatientReference
    total: int = Field(ge=0, le=27, strict=True)
    item9: int | None = Field(default=None, ge=0, le=3, strict=True)
    effective: Instant
    status: codes.Phq9Status = "final"
    id: FhirId | None = None
    encounter_id: FhirId | None = None
    goal_id: FhirId | None = None  # the symptom Goal the score measures
