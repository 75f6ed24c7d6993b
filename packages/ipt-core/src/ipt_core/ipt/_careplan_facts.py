"""What a stored CarePlan says about its IPT course (docs/fhir-mapping.md#course-as-careplan).

These readers take any CarePlan, including one an EHR wrote, and never raise on
unexpected content: what is malformed reads as absent.
"""

from __future__ import annotations

from typing import Any, cast, get_args

from ipt_core.ipt._model import DEFAULT_PLANNED_SESSIONS
from ipt_core.ipt._vocabulary import PHASE_CONCEPTS, display_of
from ipt_core.ipt.codes import (
    COURSE_TYPE_SYSTEM,
    IPT_THERAPY,
    PHASE_EXTENSION,
    PHASE_SYSTEM,
    PROBLEM_AREA_SYSTEM,
    SNOMED,
    CourseType,
    Phase,
    ProblemArea,
)
from ipt_core.ipt.fhir_json import (
    as_dict,
    as_list,
    codes_in,
    has_code,
    reference_id,
    relative_reference,
)


def is_ipt_course(careplan: dict[str, Any]) -> bool:
    """Whether a CarePlan is an IPT course: its category holds SNOMED 443730003."""
    return has_code(careplan.get("category"), SNOMED, IPT_THERAPY)


def course_type(careplan: dict[str, Any]) -> CourseType:
    """The course type from the `ipt-course-type` category (absent → `acute`)."""
    codes = codes_in(careplan.get("category"), COURSE_TYPE_SYSTEM)
    return "maintenance" if "maintenance" in codes else "acute"


def problem_areas(careplan: dict[str, Any]) -> tuple[ProblemArea, ...]:
    """The known problem areas in the CarePlan's category, in order, without repeats."""
    codes = codes_in(careplan.get("category"), PROBLEM_AREA_SYSTEM)
    known = (cast(ProblemArea, code) for code in codes if code in get_args(ProblemArea))
    return tuple(dict.fromkeys(known))


def planned_sessions(careplan: dict[str, Any]) -> int | None:
    """The planned session count: the IPT activity's `repeat.count`.

    Returns 20 for an acute course without a count, None for a maintenance course without.
    """
    count = (session_timing(careplan) or {}).get("count")
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    return DEFAULT_PLANNED_SESSIONS if course_type(careplan) == "acute" else None


def ipt_activities(careplan: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The activities (with their index) whose `detail.code` is SNOMED 443730003."""
    return [
        (index, activity)
        for index, activity in enumerate(as_list(careplan.get("activity")))
        if isinstance(activity, dict) and detail_has(activity, SNOMED, IPT_THERAPY)
    ]


def session_timing(careplan: dict[str, Any]) -> dict[str, Any] | None:
    """The `scheduledTiming.repeat` of the first IPT activity that has one, or None."""
    for _, activity in ipt_activities(careplan):
        repeat = as_dict(activity["detail"].get("scheduledTiming")).get("repeat")
        if isinstance(repeat, dict):
            return repeat
    return None


def based_on_course_id(careplan: dict[str, Any]) -> str | None:
    """The id of the first CarePlan in `basedOn` (a maintenance course's acute course)."""
    ids = (reference_id(ref, "CarePlan") for ref in as_list(careplan.get("basedOn")))
    return next((course_id for course_id in ids if course_id), None)


def outcome_references(careplan: dict[str, Any]) -> tuple[str, ...]:
    """The sessions (Encounters, Appointments) the CarePlan lists in `activity.outcomeReference`."""
    found = (
        relative_reference(ref, "Encounter", "Appointment")
        for activity in as_list(careplan.get("activity"))
        if isinstance(activity, dict)
        for ref in as_list(activity.get("outcomeReference"))
    )
    return tuple(dict.fromkeys(ref for ref in found if ref))


def course_phase(careplan: dict[str, Any]) -> Phase | None:
    """The phase the status engine last wrote in the `ipt-phase` extension, or None."""
    for extension in as_list(careplan.get("extension")):
        if isinstance(extension, dict) and extension.get("url") == PHASE_EXTENSION:
            value = extension.get("valueCoding")
            if not isinstance(value, dict) or value.get("system") != PHASE_SYSTEM:
                continue
            if value.get("code") in get_args(Phase):
                return cast(Phase, value["code"])
    return None


def with_course_phase(careplan: dict[str, Any], phase: Phase) -> dict[str, Any]:
    """Return a copy of a CarePlan with its `ipt-phase` extension set to `phase`."""
    others = [
        extension
        for extension in as_list(careplan.get("extension"))
        if not (isinstance(extension, dict) and extension.get("url") == PHASE_EXTENSION)
    ]
    return careplan | {"extension": [*others, phase_extension(phase)]}


def detail_has(activity: dict[str, Any], system: str, code: str) -> bool:
    detail = activity.get("detail")
    return isinstance(detail, dict) and has_code(detail.get("code"), system, code)


def phase_extension(phase: Phase) -> dict[str, Any]:
    """Build the `ipt-phase` extension holding `phase`."""
    coding = {"system": PHASE_SYSTEM, "code": phase, "display": display_of(PHASE_CONCEPTS, phase)}
    return {"url": PHASE_EXTENSION, "valueCoding": coding}
