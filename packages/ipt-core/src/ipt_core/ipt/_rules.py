"""IPT rules on FHIR writes (issue 4, item 2): pure checks of one resource.

A CarePlan whose category holds SNOMED 443730003 is an IPT course and must name a Patient,
have a start, focus on one or two known problem areas, plan 6-30 sessions, and, when it is
a maintenance course, continue an acute IPT course of the same patient. A PHQ-9 score must
be a whole number 0-27 (item 9: 0-3). A session linked to a course by extension must belong
to an IPT course of the same patient. Anything else passes through as ordinary FHIR.

The checks never fetch: the caller reads the CarePlan `related_course_id` names and passes
it in. Each violation names its rule and the element (FHIRPath), for a 422 OperationOutcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ipt_core.ipt._careplan_facts import (
    based_on_course_id,
    course_type,
    ipt_activities,
    is_ipt_course,
)
from ipt_core.ipt._model import MAX_PLANNED_SESSIONS, MAX_PROBLEM_AREAS, MIN_PLANNED_SESSIONS
from ipt_core.ipt._observation import ITEM9_MAX, PHQ9_MAX, integer_value, is_phq9_total
from ipt_core.ipt._session import session_course_link
from ipt_core.ipt.codes import (
    COURSE_TYPE_SYSTEM,
    COURSE_TYPES,
    LOINC,
    PHQ9_ITEM9,
    PROBLEM_AREA_SYSTEM,
    PROBLEM_AREAS,
)
from ipt_core.ipt.fhir_json import as_dict, as_list, has_code, relative_reference

SUBJECT_RULE: Final = "ipt-subject-patient"
START_RULE: Final = "ipt-course-start"
PROBLEM_AREA_RULE: Final = "ipt-problem-area"
COURSE_TYPE_RULE: Final = "ipt-course-type"
PLANNED_SESSIONS_RULE: Final = "ipt-planned-sessions"
MAINTENANCE_RULE: Final = "ipt-maintenance-based-on"
SESSION_COURSE_RULE: Final = "ipt-session-course"
PHQ9_RULE: Final = "ipt-phq9-value"
ITEM9_RULE: Final = "ipt-phq9-item9"

_SCORED: Final = ("final", "amended", "corrected")


@dataclass(frozen=True)
class RuleViolation:
    """A broken IPT rule: the rule's name, the element (FHIRPath) and what is wrong."""

    rule: str
    expression: str
    message: str


def related_course_id(resource: dict[str, Any]) -> str | None:
    """The id of the CarePlan the rules need to see alongside `resource`, if any.

    For a maintenance course that is the acute course in `basedOn`; for an Encounter or
    Appointment it is the course its extension links it to.
    """
    if resource.get("resourceType") == "CarePlan":
        maintenance = is_ipt_course(resource) and course_type(resource) == "maintenance"
        return based_on_course_id(resource) if maintenance else None
    return session_course_link(resource)


def rule_violations(
    resource: dict[str, Any], related_course: dict[str, Any] | None = None
) -> list[RuleViolation]:
    """Check a resource about to be written against the IPT rules.

    Args:
        resource: the resource as received (FHIR JSON).
        related_course: the CarePlan `related_course_id(resource)` names, or None when
            there is none or it does not exist.

    Returns:
        Every violation found; empty when the resource may be written.
    """
    match resource.get("resourceType"):
        case "CarePlan":
            return careplan_violations(resource, related_course)
        case "Encounter" | "Appointment":
            return session_violations(resource, related_course)
        case "Observation":
            return observation_violations(resource)
    return []


def careplan_violations(
    careplan: dict[str, Any], based_on: dict[str, Any] | None = None
) -> list[RuleViolation]:
    """Check an IPT course CarePlan; a CarePlan that is no IPT course has no violations.

    Args:
        careplan: the CarePlan.
        based_on: the CarePlan its `basedOn` names (a maintenance course's acute course).
    """
    if not is_ipt_course(careplan):
        return []
    return [
        *_subject_violations(careplan),
        *_start_violations(careplan),
        *_problem_area_violations(careplan),
        *_course_type_violations(careplan),
        *_planned_sessions_violations(careplan),
        *_maintenance_violations(careplan, based_on),
    ]


def session_violations(
    session: dict[str, Any], course: dict[str, Any] | None
) -> list[RuleViolation]:
    """Check an Encounter or Appointment linked to a course by extension.

    Args:
        session: the Encounter or Appointment.
        course: the CarePlan its `basedOn` extension names, or None when it does not exist.
    """
    course_id = session_course_link(session)
    if course_id is None:
        return []
    where = f"{session['resourceType']}.extension"
    if course is None or not is_ipt_course(course) or course.get("status") == "entered-in-error":
        return [_violation(SESSION_COURSE_RULE, where, f"CarePlan/{course_id} is no IPT course")]
    if _session_patient(session) != relative_reference(course.get("subject"), "Patient"):
        message = f"the session's patient is not the patient of CarePlan/{course_id}"
        return [_violation(SESSION_COURSE_RULE, where, message)]
    return []


def observation_violations(observation: dict[str, Any]) -> list[RuleViolation]:
    """Check a PHQ-9 total (0-27) or item 9 (0-3) Observation; other Observations pass."""
    violations = []
    if is_phq9_total(observation):
        violations += _score_violations(observation, "Observation", PHQ9_RULE, PHQ9_MAX)
        for index, component in enumerate(as_list(observation.get("component"))):
            if _is_item9(component):
                path = f"Observation.component[{index}]"
                violations += _score_violations(component, path, ITEM9_RULE, ITEM9_MAX)
    elif _is_item9(observation):
        violations += _score_violations(observation, "Observation", ITEM9_RULE, ITEM9_MAX)
    return violations


def _subject_violations(careplan: dict[str, Any]) -> list[RuleViolation]:
    subject = as_dict(careplan.get("subject"))
    # In a transaction the subject may be a urn:uuid placeholder typed as a Patient.
    placeholder = subject.get("type") == "Patient" and "reference" in subject
    if relative_reference(subject, "Patient") or placeholder:
        return []
    return [_violation(SUBJECT_RULE, "CarePlan.subject", "an IPT course is about a Patient")]


def _start_violations(careplan: dict[str, Any]) -> list[RuleViolation]:
    # Auto-linking and the first due session both start from period.start: a course
    # without one has no place in time.
    if isinstance(as_dict(careplan.get("period")).get("start"), str):
        return []
    return [_violation(START_RULE, "CarePlan.period.start", "an IPT course has a start date")]


def _problem_area_violations(careplan: dict[str, Any]) -> list[RuleViolation]:
    violations = []
    known: set[str] = set()
    for path, code in _category_codes(careplan, PROBLEM_AREA_SYSTEM):
        if code in PROBLEM_AREAS:
            known.add(code)
        else:
            message = f"{code!r} is not a problem area; use one of {', '.join(PROBLEM_AREAS)}"
            violations.append(_violation(PROBLEM_AREA_RULE, path, message))
    if not known:
        message = f"an IPT course needs a problem area coding from {PROBLEM_AREA_SYSTEM}"
        violations.append(_violation(PROBLEM_AREA_RULE, "CarePlan.category", message))
    elif len(known) > MAX_PROBLEM_AREAS:
        message = f"an IPT course focuses on one or two problem areas, not {len(known)}"
        violations.append(_violation(PROBLEM_AREA_RULE, "CarePlan.category", message))
    return violations


def _course_type_violations(careplan: dict[str, Any]) -> list[RuleViolation]:
    codes = _category_codes(careplan, COURSE_TYPE_SYSTEM)
    violations = [
        _violation(COURSE_TYPE_RULE, path, f"{code!r} is not a course type (acute, maintenance)")
        for path, code in codes
        if code not in COURSE_TYPES
    ]
    if len({code for _, code in codes}) > 1 and not violations:
        message = "a course is either acute or maintenance, not both"
        violations.append(_violation(COURSE_TYPE_RULE, "CarePlan.category", message))
    return violations


def _planned_sessions_violations(careplan: dict[str, Any]) -> list[RuleViolation]:
    violations = []
    for index, activity in ipt_activities(careplan):
        timing = as_dict(as_dict(activity["detail"]).get("scheduledTiming"))
        repeat = as_dict(timing.get("repeat"))
        if "count" in repeat and not _is_int_within(
            repeat["count"], MIN_PLANNED_SESSIONS, MAX_PLANNED_SESSIONS
        ):
            path = f"CarePlan.activity[{index}].detail.scheduledTiming.repeat.count"
            message = (
                f"planned sessions must be {MIN_PLANNED_SESSIONS}-{MAX_PLANNED_SESSIONS}, "
                f"not {repeat['count']!r}"
            )
            violations.append(_violation(PLANNED_SESSIONS_RULE, path, message))
    return violations


def _maintenance_violations(
    careplan: dict[str, Any], based_on: dict[str, Any] | None
) -> list[RuleViolation]:
    if course_type(careplan) != "maintenance":
        return []
    acute_id = based_on_course_id(careplan)
    problem = _acute_course_problem(careplan, acute_id, based_on)
    return [_violation(MAINTENANCE_RULE, "CarePlan.basedOn", problem)] if problem else []


def _acute_course_problem(
    careplan: dict[str, Any], acute_id: str | None, acute: dict[str, Any] | None
) -> str | None:
    if acute_id is None:
        return "a maintenance course must be basedOn the acute IPT course it continues"
    if acute is None or acute.get("status") == "entered-in-error":
        return f"CarePlan/{acute_id} in basedOn does not exist"
    if not is_ipt_course(acute) or course_type(acute) != "acute":
        return f"CarePlan/{acute_id} in basedOn is not an acute IPT course"
    patient = relative_reference(careplan.get("subject"), "Patient")
    if patient != relative_reference(acute.get("subject"), "Patient"):
        return f"CarePlan/{acute_id} in basedOn is another patient's course"
    return None


def _score_violations(
    element: dict[str, Any], path: str, rule: str, maximum: int
) -> list[RuleViolation]:
    keys = [key for key in element if key.startswith("value")]
    if not keys:
        # Components have no status of their own: they share the Observation's.
        scored = element.get("status", "final") in _SCORED
        if scored and "dataAbsentReason" not in element:
            return [_violation(rule, f"{path}.value", f"a score 0-{maximum} is required")]
        return []
    if keys[0] not in ("valueInteger", "valueQuantity"):
        message = f"a score is a valueInteger or valueQuantity, not {keys[0]}"
        return [_violation(rule, f"{path}.{keys[0]}", message)]
    value = integer_value(element)
    if value is not None and 0 <= value <= maximum:
        return []
    where, raw = _score_location(element, path, keys[0])
    return [_violation(rule, where, f"a score must be a whole number 0-{maximum}, not {raw!r}")]


def _score_location(element: dict[str, Any], path: str, key: str) -> tuple[str, Any]:
    if key == "valueInteger":
        return f"{path}.valueInteger", element[key]
    return f"{path}.valueQuantity.value", as_dict(element[key]).get("value")


def _category_codes(careplan: dict[str, Any], system: str) -> list[tuple[str, Any]]:
    found = []
    for index, category in enumerate(as_list(careplan.get("category"))):
        for position, coding in enumerate(as_list(as_dict(category).get("coding"))):
            if isinstance(coding, dict) and coding.get("system") == system:
                path = f"CarePlan.category[{index}].coding[{position}].code"
                found.append((path, coding.get("code")))
    return found


def _is_item9(element: Any) -> bool:
    return has_code(as_dict(element).get("code"), LOINC, PHQ9_ITEM9)


def _is_int_within(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _session_patient(session: dict[str, Any]) -> str | None:
    if session.get("resourceType") == "Encounter":
        return relative_reference(session.get("subject"), "Patient")
    for participant in as_list(session.get("participant")):
        if patient := relative_reference(as_dict(participant).get("actor"), "Patient"):
            return patient
    return None


def _violation(rule: str, expression: str, message: str) -> RuleViolation:
    return RuleViolation(rule, expression, message)
