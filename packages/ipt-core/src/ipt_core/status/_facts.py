"""The facts the status function reads (docs/status-rules.md#inputs), as frozen values.

A loader turns FHIR resources into these: sessions already resolved to one outcome each (see
`resolve_session`), PHQ-9 totals with their item 9 already chosen (a component wins over a
separate Observation), and the CarePlan fields as stored now. The *as of* rule is not the
loader's job: facts may lie after `now`, and `compute_status` decides what counts at that instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, get_args

from ipt_core.instants import ensure_utc
from ipt_core.ipt.codes import CarePlanStatus, CourseType, SessionOutcome

from ._calendar import Cadence

ACTIVE_STATUSES: Final[frozenset[CarePlanStatus]] = frozenset({"active", "unknown"})
# The literal types' members as sets, built once: `get_args` per fact was a measurable share
# of a batch's facts (bench/recompute_bench.py, py-spy).
_OUTCOMES: Final = frozenset(get_args(SessionOutcome))
_COURSE_STATUSES: Final = frozenset(get_args(CarePlanStatus)) - {"entered-in-error"}
_COURSE_TYPES: Final = frozenset(get_args(CourseType))
PHQ9_MAX: Final = 27
ITEM9_MAX: Final = 3


@dataclass(frozen=True, slots=True)
class SessionFact:
    """One IPT session of a course with its deciding outcome.

    Attributes:
        id: Resource id used to break ties between sessions at the same time.
        time: Encounter `period.start`, else Appointment `start`.
        outcome: `booked` means an Appointment still `booked`; whether it is a future booking
            or a stale one ("none of these") depends on `now` and is decided by the status.
    """

    id: str
    time: datetime
    outcome: SessionOutcome

    def __post_init__(self) -> None:
        """Normalise the time to UTC and reject unknown outcomes."""
        if self.time.tzinfo is not UTC:  # the loader's instants are UTC already
            object.__setattr__(self, "time", ensure_utc(self.time, f"session {self.id} time"))
        if self.outcome not in _OUTCOMES:
            raise ValueError(f"session {self.id}: unknown outcome {self.outcome!r}")


@dataclass(frozen=True, slots=True)
class Phq9Fact:
    """One PHQ-9 total (LOINC 44261-6, status final|amended|corrected) of the patient.

    Attributes:
        id: Observation id, for ties and to avoid counting an acute baseline twice.
        time: `effectiveDateTime`.
        value: The total score, 0-27.
        item9: The item 9 answer (LOINC 44260-8) recorded with it, 0-3; None when absent.
    """

    id: str
    time: datetime
    value: int
    item9: int | None = None

    def __post_init__(self) -> None:
        """Normalise the time to UTC and reject scores outside the instrument's range."""
        if self.time.tzinfo is not UTC:
            object.__setattr__(self, "time", ensure_utc(self.time, f"PHQ-9 {self.id} time"))
        if not _is_score(self.value, PHQ9_MAX):
            raise ValueError(f"PHQ-9 {self.id}: total must be an integer 0-27, got {self.value!r}")
        if self.item9 is not None and not _is_score(self.item9, ITEM9_MAX):
            raise ValueError(f"PHQ-9 {self.id}: item 9 must be an integer 0-3, got {self.item9!r}")


@dataclass(frozen=True, slots=True)
class CourseFacts:
    """An IPT course (CarePlan) with its sessions, PHQ-9 values and related course.

    Attributes:
        status: CarePlan status; `entered-in-error` is no course and is rejected.
        course_type: From the `ipt-course-type` coding (absent → `acute`).
        period_start: `period.start`; None when the CarePlan has none yet.
        period_end: `period.end`, set when the course is completed or stopped.
        planned_count: `repeat.count` of the IPT activity's timing, None when not given (an
            acute course then plans the configured default, a maintenance course has none).
        cadence: From the IPT activity's timing (`cadence_from_timing`); None → type default.
        addresses_recurrent_depression: An `addresses` Condition has an ICD-10-CM code `F33…`.
        sessions: The course's own sessions (any time; `compute_status` applies *as of*).
        phq9: The patient's PHQ-9 totals (any time; the course window is applied here).
        practice_statuses: `detail.status` of each `social-practice` activity.
        related: For a maintenance course, the acute course it is `basedOn`; for an acute
            course, its active maintenance course (the active one that started last). Its own
            `related` is ignored.
        has_maintenance_course: For an acute course, whether any maintenance course (in any
            status but `entered-in-error`) is `basedOn` it; implied when `related` is given.
    """

    status: CarePlanStatus
    course_type: CourseType = "acute"
    period_start: datetime | None = None
    period_end: datetime | None = None
    planned_count: int | None = None
    cadence: Cadence | None = None
    addresses_recurrent_depression: bool = False
    sessions: tuple[SessionFact, ...] = ()
    phq9: tuple[Phq9Fact, ...] = ()
    practice_statuses: tuple[str, ...] = ()
    related: CourseFacts | None = None
    has_maintenance_course: bool = False

    def __post_init__(self) -> None:
        """Normalise the period to UTC and reject facts no rule can read."""
        # A CarePlan entered in error is no course at all: the loader never reads one.
        if self.status not in _COURSE_STATUSES:
            raise ValueError(f"CarePlan status {self.status!r} is not an IPT course status")
        if self.course_type not in _COURSE_TYPES:
            raise ValueError(f"unknown course type {self.course_type!r}")
        for name in ("period_start", "period_end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is not UTC:
                object.__setattr__(self, name, ensure_utc(value, name))
        if self.planned_count is not None and self.planned_count < 0:
            raise ValueError(f"planned_count must not be negative, got {self.planned_count}")
        if self.related is not None and self.related.course_type == self.course_type:
            raise ValueError("the related course of a course must be of the other course type")

    @property
    def is_active(self) -> bool:
        """Whether the CarePlan counts as active (`unknown` is treated as `active`)."""
        return self.status in ACTIVE_STATUSES


def _is_score(value: object, maximum: int) -> bool:
    # bool is an int subclass; a True score is a loader bug, not a 1.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum
