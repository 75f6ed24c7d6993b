"""Goals of a course as FHIR Goal resources (docs/fhir-mapping.md#goals).

A course has one symptom goal, remission measured by the PHQ-9 total, and interpersonal
goals, each under one problem area.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, cast, get_args

from ipt_core.instants import add_months, format_date
from ipt_core.ipt._model import Course, InterpersonalGoal, TreatmentOutline
from ipt_core.ipt._vocabulary import PROBLEM_AREA_CONCEPTS, display_of
from ipt_core.ipt.codes import LOINC, PHQ9_TOTAL, PROBLEM_AREA_SYSTEM, GoalAchievement, ProblemArea
from ipt_core.ipt.fhir_json import (
    as_list,
    codes_in,
    concept,
    has_code,
    narrative,
    reference,
)

GOAL_ACHIEVEMENT_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
UCUM: Final = "http://unitsofmeasure.org"
REMISSION_BELOW: Final = 5
SYMPTOM_GOAL_TEXT: Final = "Remission of depressive symptoms (PHQ-9 total score below 5)"
PHQ9_TOTAL_DISPLAY: Final = "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"


def planned_end(outline: TreatmentOutline) -> datetime | None:
    """When the last planned session's interval ends: start + planned sessions x cadence.

    Returns None for a maintenance course without a planned count.
    """
    if outline.planned_sessions is None:
        return None
    if outline.cadence == "monthly":
        return add_months(outline.start, outline.planned_sessions)
    return outline.start + timedelta(weeks=outline.planned_sessions)


def symptom_goal(course: Course, achievement: GoalAchievement = "in-progress") -> dict[str, Any]:
    """Build the symptom Goal of a course: PHQ-9 total below 5 by the planned end.

    Args:
        course: the course; its `symptom_goal_id` becomes the Goal's id.
        achievement: the current `achievementStatus` (kept current by the status engine).
    """
    due = planned_end(course)
    target: dict[str, Any] = {
        "measure": concept(LOINC, PHQ9_TOTAL, PHQ9_TOTAL_DISPLAY),
        "detailQuantity": {
            "value": REMISSION_BELOW,
            "comparator": "<",
            "unit": "{score}",
            "system": UCUM,
            "code": "{score}",
        },
    }
    # The narrative leaves out achievement: the status engine changes it without a re-render.
    facts = [("Target", "PHQ-9 total score below 5")]
    if due is not None:
        target["dueDate"] = format_date(due)
        facts.append(("Due", target["dueDate"]))
    goal: dict[str, Any] = {
        "resourceType": "Goal",
        **_id(course.symptom_goal_id),
        "text": narrative("Symptom goal: remission", facts),
        "lifecycleStatus": "active",
        "achievementStatus": _achievement_concept(achievement),
        "description": {"text": SYMPTOM_GOAL_TEXT},
        "subject": reference(course.patient),
        "startDate": format_date(course.start),
        "target": [target],
    }
    return goal | _addresses(course.conditions)


def interpersonal_goal(goal: InterpersonalGoal, patient: str) -> dict[str, Any]:
    """Build the Goal of an interpersonal goal, categorised by its problem area."""
    area = display_of(PROBLEM_AREA_CONCEPTS, goal.problem_area)
    built: dict[str, Any] = {
        "resourceType": "Goal",
        **_id(goal.id),
        "text": narrative(goal.text, [("Problem area", area)]),
        "lifecycleStatus": "active",
        "category": [concept(PROBLEM_AREA_SYSTEM, goal.problem_area, area)],
        "description": {"text": goal.text},
        "subject": reference(patient),
    }
    if goal.achievement is not None:
        built["achievementStatus"] = _achievement_concept(goal.achievement)
    return built


def course_goals(course: Course) -> list[dict[str, Any]]:
    """Build every Goal of a course: the symptom goal first, then the interpersonal goals."""
    goals = [interpersonal_goal(goal, course.patient) for goal in course.interpersonal_goals]
    return [symptom_goal(course), *goals]


def is_symptom_goal(goal: dict[str, Any]) -> bool:
    """Whether a Goal is a symptom goal: one of its targets measures the PHQ-9 total."""
    return any(
        has_code(target.get("measure"), LOINC, PHQ9_TOTAL)
        for target in as_list(goal.get("target"))
        if isinstance(target, dict)
    )


def interpersonal_goal_from_fhir(goal: dict[str, Any]) -> InterpersonalGoal | None:
    """Read an interpersonal goal from its Goal; None when the Goal has no known problem area.

    Raises:
        pydantic.ValidationError: when the Goal has no usable description text.
    """
    areas = codes_in(goal.get("category"), PROBLEM_AREA_SYSTEM)
    area = next((code for code in areas if code in get_args(ProblemArea)), None)
    if area is None:
        return None
    description = goal.get("description")
    return InterpersonalGoal(
        text=description.get("text", "") if isinstance(description, dict) else "",
        problem_area=cast(ProblemArea, area),
        id=goal.get("id"),
        achievement=goal_achievement(goal),
    )


def goal_achievement(goal: dict[str, Any]) -> GoalAchievement | None:
    """The goal-achievement code of a Goal's `achievementStatus`, or None."""
    codes = codes_in(goal.get("achievementStatus"), GOAL_ACHIEVEMENT_SYSTEM)
    known = [code for code in codes if code in get_args(GoalAchievement)]
    return cast(GoalAchievement, known[0]) if known else None


def with_goal_achievement(goal: dict[str, Any], achievement: GoalAchievement) -> dict[str, Any]:
    """Return a copy of a Goal with `achievementStatus` set (the status engine's write-back)."""
    return goal | {"achievementStatus": _achievement_concept(achievement)}


def _achievement_concept(achievement: GoalAchievement) -> dict[str, Any]:
    display = achievement.replace("-", " ").title()  # "no-change" -> "No Change"
    return concept(GOAL_ACHIEVEMENT_SYSTEM, achievement, display)


def _id(resource_id: str | None) -> dict[str, Any]:
    return {"id": resource_id} if resource_id else {}


def _addresses(conditions: tuple[str, ...]) -> dict[str, Any]:
    return {"addresses": [reference(c) for c in conditions]} if conditions else {}
