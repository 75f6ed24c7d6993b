"""Request bodies of the IPT domain API, with the examples the OpenAPI document shows.

Unknown fields are refused (a typo must not silently drop a value); every violation becomes a
400 OperationOutcome naming the field.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ipt_core.ipt import PracticeStatus, ProblemArea, SessionMode

__all__ = [
    "EnrolmentRequest",
    "GoalInput",
    "HoldRequest",
    "MaintenanceRequest",
    "PatientInput",
    "Phq9Input",
    "PracticeRequest",
    "PracticeUpdate",
    "SessionRequest",
    "StopRequest",
]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Notes = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
Icd10cm = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")]
PatientReference = Annotated[str, StringConstraints(pattern=r"^Patient/[A-Za-z0-9\-.]{1,64}$")]
TherapistReference = Annotated[
    str, StringConstraints(pattern=r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$")
]
PlannedSessions = Annotated[int, Field(ge=6, le=30, description="Planned sessions, 6-30")]
SessionMinutes = Annotated[int, Field(ge=16, le=240, description="Minutes per session")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentifierInput(_Body):
    """A business identifier, e.g. the hospital's medical record number."""

    system: Text
    value: Text


class PatientInput(_Body):
    """The patient: an existing `reference`, or an `identifier` (created if no Patient has it)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"reference": "Patient/123"},
                {
                    "identifier": {"system": "urn:oid:2.16.840.1.113883.4.1", "value": "MRN-0042"},
                    "family": "Rivera",
                    "given": ["Alex"],
                    "birth_date": "1984-03-02",
                    "gender": "female",
                },
            ]
        }
    )

    reference: PatientReference | None = None
    identifier: IdentifierInput | None = None
    family: Text | None = None
    given: list[Text] = Field(default_factory=list, max_length=5)
    birth_date: date | None = None
    gender: Literal["male", "female", "other", "unknown"] | None = None

    @model_validator(mode="after")
    def _one_way_to_name_the_patient(self) -> Self:
        if (self.reference is None) == (self.identifier is None):
            raise ValueError("give either a Patient reference or an identifier, not both")
        if self.reference is not None and (self.family or self.given or self.birth_date):
            raise ValueError("demographics only go with an identifier (a new Patient)")
        return self


class GoalInput(_Body):
    """An interpersonal goal under one of the course's problem areas."""

    text: Text
    problem_area: ProblemArea


class Phq9Input(_Body):
    """A PHQ-9 total (0-27) with item 9, thoughts of self-harm (0-3), when answered."""

    total: int = Field(ge=0, le=27, strict=True)
    item9: int | None = Field(default=None, ge=0, le=3, strict=True)


class BaselinePhq9(Phq9Input):
    """The baseline PHQ-9 of the intake; `effective` defaults to the course start."""

    effective: AwareDatetime | None = None


class EnrolmentRequest(_Body):
    """The treatment outline agreed at intake (docs/ipt-model.md)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "patient": {"reference": "Patient/123"},
                    "therapist": "Practitioner/t-1",
                    "conditions": ["F33.1"],
                    "problem_areas": ["role-dispute"],
                    "planned_sessions": 16,
                    "session_minutes": 50,
                    "start": "2026-01-05T09:00:00Z",
                    "interpersonal_goals": [
                        {"text": "Talk with my partner weekly", "problem_area": "role-dispute"}
                    ],
                    "baseline_phq9": {"total": 18, "item9": 0},
                }
            ]
        }
    )

    patient: PatientInput
    therapist: TherapistReference | None = None
    conditions: list[Icd10cm] = Field(default_factory=list, max_length=10)
    problem_areas: list[ProblemArea] = Field(min_length=1, max_length=2)
    planned_sessions: PlannedSessions = 20
    session_minutes: SessionMinutes = 60
    start: AwareDatetime
    interpersonal_goals: list[GoalInput] = Field(default_factory=list, max_length=20)
    baseline_phq9: BaselinePhq9 | None = None
    identifier: Text | None = Field(
        default=None, description="The course's business identifier; generated when absent"
    )


class SessionRequest(_Body):
    """A session that took place (attended) or did not (no-show, cancelled)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "start": "2026-01-12T09:00:00Z",
                    "minutes": 50,
                    "outcome": "attended",
                    "mode": "virtual",
                    "phq9": {"total": 14, "item9": 0},
                    "notes": "Role-play of a conversation with her partner.",
                },
                {"start": "2026-01-19T09:00:00Z", "outcome": "no-show"},
            ]
        }
    )

    start: AwareDatetime
    minutes: SessionMinutes = 60
    outcome: Literal["attended", "no-show", "cancelled"]
    mode: SessionMode = "in-person"
    phq9: Phq9Input | None = None
    notes: Notes | None = None


class PracticeRequest(_Body):
    """A social activity, once stressful, the patient agrees to practise."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"description": "Call an old friend this week"}]}
    )

    description: Text
    status: PracticeStatus = "not-started"


class PracticeUpdate(_Body):
    """A change to a practice assignment: its status, its description, or both."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "completed"}]})

    status: PracticeStatus | None = None
    description: Text | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.status is None and self.description is None:
            raise ValueError("give a status, a description, or both")
        return self


class StopRequest(_Body):
    """Why the course stops before it is completed."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "Patient moved out of the area"}]}
    )

    reason: Text


class HoldRequest(_Body):
    """Why the course is paused (optional)."""

    reason: Text | None = None


class MaintenanceRequest(_Body):
    """A maintenance contract (IPT-M) after a completed acute course: monthly sessions."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"start": "2026-06-01T09:00:00Z", "months": 24}]}
    )

    start: AwareDatetime | None = Field(default=None, description="Defaults to now")
    months: PlannedSessions = Field(default=24, description="Monthly sessions planned, 6-30")
    session_minutes: SessionMinutes | None = Field(
        default=None, description="Defaults to the acute course's session length"
    )
    therapist: TherapistReference | None = Field(
        default=None, description="Defaults to the acute course's therapist"
    )
    interpersonal_goals: list[GoalInput] = Field(default_factory=list, max_length=20)
