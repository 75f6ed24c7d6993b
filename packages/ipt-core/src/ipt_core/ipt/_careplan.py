"""A course of IPT as a FHIR CarePlan, and back (docs/fhir-mapping.md#course-as-careplan).

The CarePlan holds the outline and progress of the course; its Goals (`_goal.py`) hold
the goals' text. Reading a course back needs both, so `course_from_fhir` takes the Goals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ipt_core.instants import format_instant, parse_optional_instant
from ipt_core.ipt._careplan_facts import (
    based_on_course_id,
    course_phase,
    course_type,
    detail_has,
    outcome_references,
    phase_extension,
    planned_sessions,
    problem_areas,
    session_timing,
)
from ipt_core.ipt._goal import interpersonal_goal_from_fhir, is_symptom_goal
from ipt_core.ipt._model import (
    DEFAULT_SESSION_MINUTES,
    Course,
    InterpersonalGoal,
    PracticeAssignment,
)
from ipt_core.ipt._vocabulary import (
    ACTIVITY_CONCEPTS,
    COURSE_TYPE_CONCEPTS,
    IPT_THERAPY_DISPLAY,
    PROBLEM_AREA_CONCEPTS,
    display_of,
)
from ipt_core.ipt.codes import (
    ACTIVITY_SYSTEM,
    ASSESS_PLAN,
    COURSE_IDENTIFIER_SYSTEM,
    COURSE_TYPE_SYSTEM,
    IPT_THERAPY,
    PROBLEM_AREA_SYSTEM,
    SNOMED,
    SOCIAL_PRACTICE,
    US_CORE_CAREPLAN_CATEGORY,
    CadenceCode,
    PracticeStatus,
)
from ipt_core.ipt.fhir_json import (
    as_dict,
    as_list,
    concept,
    narrative,
    reference,
    reference_id,
    relative_reference,
)

ASSESS_PLAN_DISPLAY: Final = "Assessment and Plan of Treatment"

# CarePlan.activity.detail.status of the sessions activity, which follows the course.
_SESSIONS_STATUS: Final = {
    "draft": "not-started",
    "active": "in-progress",
    "on-hold": "on-hold",
    "completed": "completed",
    "revoked": "stopped",
    "entered-in-error": "entered-in-error",
    "unknown": "unknown",
}
# Activity statuses outside the four of a practice assignment, read as the nearest one.
_PRACTICE_STATUS: Final[dict[str, PracticeStatus]] = {
    "not-started": "not-started",
    "scheduled": "not-started",
    "unknown": "not-started",
    "in-progress": "in-progress",
    "on-hold": "in-progress",
    "completed": "completed",
    "cancelled": "cancelled",
    "stopped": "cancelled",
}
_PERIOD_UNIT: Final[dict[CadenceCode, str]] = {"weekly": "wk", "monthly": "mo"}
_MINUTES_PER: Final = {"s": 1 / 60, "min": 1, "h": 60}


def course_to_careplan(course: Course) -> dict[str, Any]:
    """Build the CarePlan of a course, with generated narrative.

    Goals are referenced by id: give the symptom and interpersonal goals their ids first
    (`Course.from_outline`), or they are left out of `CarePlan.goal`.
    """
    careplan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": course.id,
        "text": _narrative(course),
    }
    if course.phase is not None:
        careplan["extension"] = [phase_extension(course.phase)]
    if course.identifier is not None:
        careplan["identifier"] = [{"system": COURSE_IDENTIFIER_SYSTEM, "value": course.identifier}]
    if course.based_on is not None:
        careplan["basedOn"] = [reference(f"CarePlan/{course.based_on}")]
    careplan |= {
        "status": course.status,
        "intent": "plan",
        "category": _categories(course),
        "title": _title(course),
        "subject": reference(course.patient),
        "period": _period(course),
    }
    if course.therapist is not None:
        careplan["author"] = reference(course.therapist)
    if course.conditions:
        careplan["addresses"] = [reference(c) for c in course.conditions]
    if goals := _goal_references(course):
        careplan["goal"] = goals
    careplan["activity"] = [
        _sessions_activity(course),
        *map(_practice, course.practice_assignments),
    ]
    return careplan


def course_from_fhir(careplan: dict[str, Any], goals: Sequence[dict[str, Any]] = ()) -> Course:
    """Read a course from its CarePlan and the Goals it references.

    Args:
        careplan: an IPT course CarePlan.
        goals: Goal resources; those the CarePlan references become the symptom goal
            (the one measuring the PHQ-9 total) and the interpersonal goals, in its order.

    Raises:
        pydantic.ValidationError: when the CarePlan is not a well-formed IPT course.
    """
    symptom_goal_id, interpersonal_goals = _course_goals(careplan, goals)
    period = as_dict(careplan.get("period"))
    timing = session_timing(careplan)
    # Validation by the model: whatever the CarePlan lacks or gets wrong is rejected there.
    return Course.model_validate(
        {
            "id": careplan.get("id"),
            "status": careplan.get("status"),
            "patient": relative_reference(careplan.get("subject"), "Patient"),
            "therapist": relative_reference(
                careplan.get("author"), "Practitioner", "PractitionerRole"
            ),
            "conditions": _references(careplan.get("addresses"), "Condition"),
            "problem_areas": problem_areas(careplan),
            "course_type": course_type(careplan),
            "planned_sessions": planned_sessions(careplan),
            "session_minutes": _session_minutes(timing),
            "cadence": _cadence(timing),
            "start": parse_optional_instant(period.get("start")),
            "end": parse_optional_instant(period.get("end")),
            "interpersonal_goals": interpersonal_goals,
            "based_on": based_on_course_id(careplan),
            "identifier": _course_identifier(careplan),
            "practice_assignments": _practice_assignments(careplan),
            "symptom_goal_id": symptom_goal_id,
            "session_references": outcome_references(careplan),
            "phase": course_phase(careplan),
        }
    )


def _categories(course: Course) -> list[dict[str, Any]]:
    areas = (
        concept(PROBLEM_AREA_SYSTEM, area, display_of(PROBLEM_AREA_CONCEPTS, area))
        for area in course.problem_areas
    )
    return [
        concept(US_CORE_CAREPLAN_CATEGORY, ASSESS_PLAN, ASSESS_PLAN_DISPLAY),
        concept(SNOMED, IPT_THERAPY, IPT_THERAPY_DISPLAY),
        concept(COURSE_TYPE_SYSTEM, course.course_type, _type_display(course)),
        *areas,
    ]


def _sessions_activity(course: Course) -> dict[str, Any]:
    repeat: dict[str, Any] = (
        {} if course.planned_sessions is None else {"count": course.planned_sessions}
    )
    repeat |= {
        "duration": course.session_minutes,
        "durationUnit": "min",
        "frequency": 1,
        "period": 1,
        "periodUnit": _PERIOD_UNIT[course.cadence],
    }
    activity: dict[str, Any] = {}
    if course.session_references:
        activity["outcomeReference"] = [reference(ref) for ref in course.session_references]
    activity["detail"] = {
        "kind": "Appointment",
        "code": concept(SNOMED, IPT_THERAPY, IPT_THERAPY_DISPLAY),
        "status": _SESSIONS_STATUS[course.status],
        "scheduledTiming": {"repeat": repeat},
        "description": f"{_title(course)}: {_schedule(course)}",
    }
    return activity


def _practice(assignment: PracticeAssignment) -> dict[str, Any]:
    code = concept(ACTIVITY_SYSTEM, SOCIAL_PRACTICE, display_of(ACTIVITY_CONCEPTS, SOCIAL_PRACTICE))
    detail = {"code": code, "status": assignment.status, "description": assignment.description}
    return {"detail": detail}


def _goal_references(course: Course) -> list[dict[str, Any]]:
    ids = [course.symptom_goal_id, *(goal.id for goal in course.interpersonal_goals)]
    return [reference(f"Goal/{goal_id}") for goal_id in ids if goal_id]


def _period(course: Course) -> dict[str, Any]:
    period = {"start": format_instant(course.start)}
    if course.end is not None:
        period["end"] = format_instant(course.end)
    return period


def _title(course: Course) -> str:
    return f"Interpersonal psychotherapy, {course.course_type} course"


def _type_display(course: Course) -> str:
    return display_of(COURSE_TYPE_CONCEPTS, course.course_type)


def _schedule(course: Course) -> str:
    count = "" if course.planned_sessions is None else f"{course.planned_sessions} "
    return f"{count}{course.cadence} sessions of {course.session_minutes} minutes"


def _narrative(course: Course) -> dict[str, Any]:
    areas = ", ".join(display_of(PROBLEM_AREA_CONCEPTS, a) for a in course.problem_areas)
    facts = [
        ("Status", course.status),
        ("Problem areas", areas),
        ("Sessions", _schedule(course)),
        ("Start", format_instant(course.start)),
    ]
    if course.end is not None:
        facts.append(("End", format_instant(course.end)))
    facts += [("Interpersonal goal", goal.text) for goal in course.interpersonal_goals]
    facts += [
        (f"Practice assignment ({assignment.status})", assignment.description)
        for assignment in course.practice_assignments
    ]
    return narrative(_title(course), facts)


def _course_goals(
    careplan: dict[str, Any], goals: Sequence[dict[str, Any]]
) -> tuple[str | None, list[InterpersonalGoal]]:
    by_id = {goal.get("id"): goal for goal in goals}
    referenced = (by_id.get(reference_id(ref, "Goal")) for ref in as_list(careplan.get("goal")))
    symptom_goal_id: str | None = None
    interpersonal: list[InterpersonalGoal] = []
    for goal in referenced:
        if goal is None:
            continue
        if is_symptom_goal(goal):
            symptom_goal_id = symptom_goal_id or goal.get("id")
        elif (parsed := interpersonal_goal_from_fhir(goal)) is not None:
            interpersonal.append(parsed)
    return symptom_goal_id, interpersonal


def _practice_assignments(careplan: dict[str, Any]) -> list[PracticeAssignment]:
    details = [
        activity["detail"]
        for activity in as_list(careplan.get("activity"))
        if isinstance(activity, dict) and detail_has(activity, ACTIVITY_SYSTEM, SOCIAL_PRACTICE)
    ]
    return [
        PracticeAssignment(
            description=detail.get("description") or display_of(ACTIVITY_CONCEPTS, SOCIAL_PRACTICE),
            status=_PRACTICE_STATUS[detail.get("status")],
        )
        # `entered-in-error` (or no status) is no assignment (docs/fhir-mapping.md#what-counts).
        for detail in details
        if detail.get("status") in _PRACTICE_STATUS
    ]


def _references(elements: Any, resource_type: str) -> list[str]:
    found = (relative_reference(element, resource_type) for element in as_list(elements))
    return [ref for ref in found if ref]


def _course_identifier(careplan: dict[str, Any]) -> str | None:
    for identifier in as_list(careplan.get("identifier")):
        if isinstance(identifier, dict) and identifier.get("system") == COURSE_IDENTIFIER_SYSTEM:
            value = identifier.get("value")
            return value if isinstance(value, str) else None
    return None


def _session_minutes(repeat: dict[str, Any] | None) -> int:
    duration = (repeat or {}).get("duration")
    per_unit = _MINUTES_PER.get((repeat or {}).get("durationUnit", "min"))
    if not isinstance(duration, int | float) or per_unit is None:
        return DEFAULT_SESSION_MINUTES
    return round(duration * per_unit)


def _cadence(repeat: dict[str, Any] | None) -> CadenceCode | None:
    unit = (repeat or {}).get("periodUnit")
    if unit is None:
        return None  # the model's default for the course type
    return "monthly" if unit == "mo" else "weekly"
