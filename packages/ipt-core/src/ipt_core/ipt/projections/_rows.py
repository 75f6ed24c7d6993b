"""Projection rows read from one resource: pure functions of its FHIR JSON (docs/fhir-mapping.md).

These readers take whatever an EHR sent and never raise: what is malformed reads as absent,
and a resource that cannot be placed (no Patient, no time, no score) gives no row at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from ipt_core.instants import parse_instant
from ipt_core.ipt._careplan_facts import (
    based_on_course_id,
    course_type,
    planned_sessions,
    problem_areas,
    session_timing,
)
from ipt_core.ipt._observation import is_phq9_total, phq9_item9, phq9_total
from ipt_core.ipt._session import session_course_link
from ipt_core.ipt.codes import (
    CPT,
    CPT_PSYCHOTHERAPY,
    IPT_THERAPY,
    LOINC,
    PHQ9_ITEM9,
    PHQ9_TOTAL,
    SNOMED,
)
from ipt_core.ipt.fhir_json import as_dict, as_list, has_code, reference_id, relative_reference

__all__ = ["SessionFacts", "course_row", "measure_row", "patient_id", "session_facts"]

ENTERED_IN_ERROR: Final = "entered-in-error"
_THERAPISTS: Final = ("Practitioner", "PractitionerRole")
_SECONDS_PER: Final = {"s": 1, "min": 60, "h": 3600}


@dataclass(frozen=True)
class SessionFacts:
    """What an Encounter or Appointment says about the session it may be.

    Attributes:
        explicit_course_id: the course of the `basedOn` extension (linking rule 1), if any.
        is_ipt: `type` / `serviceType` names IPT (SNOMED 443730003) or CPT 90832/90834/90837,
            so the session may be auto-linked (rule 3).
    """

    resource_type: str
    resource_id: str
    patient_id: str
    status: str
    start: datetime | None
    minutes: int | None
    appointment_id: str | None
    is_ipt: bool
    explicit_course_id: str | None

    def row(self, course_id: str | None, link_reason: str | None) -> dict[str, Any]:
        """The `ipt_session` row of these facts, linked to `course_id` for `link_reason`."""
        return {
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "patient_id": self.patient_id,
            "course_id": course_id,
            "link_reason": link_reason if course_id else None,
            "status": self.status,
            "start": self.start,
            "minutes": self.minutes,
            "appointment_id": self.appointment_id,
            "is_ipt": self.is_ipt,
        }


def patient_id(element: Any) -> str | None:
    """The id of the Patient a Reference element points at, or None."""
    return reference_id(element, "Patient")


def course_row(
    careplan: dict[str, Any], *, recurrent: bool, symptom_goal_id: str | None
) -> dict[str, Any] | None:
    """The `ipt_course` row of an IPT course CarePlan; None when it names no Patient.

    Args:
        careplan: a CarePlan whose category holds SNOMED 443730003.
        recurrent: whether a Condition it addresses is coded ICD-10-CM F33.x.
        symptom_goal_id: the id of its Goal that measures the PHQ-9 total, if any.
    """
    patient = patient_id(careplan.get("subject"))
    if patient is None or not isinstance(careplan.get("id"), str):
        return None
    period = as_dict(careplan.get("period"))
    timing = session_timing(careplan)
    author = careplan.get("author")
    return {
        "id": careplan["id"],
        "patient_id": patient,
        "therapist_ref": relative_reference(author, *_THERAPISTS),
        "organization_ref": relative_reference(author, "Organization"),
        "status": str(careplan.get("status")),
        "course_type": course_type(careplan),
        "problem_areas": list(problem_areas(careplan)),
        "planned_sessions": planned_sessions(careplan),
        "session_minutes": _timing_minutes(timing),
        "timing": timing,
        "period_start": _instant(period.get("start")),
        "period_end": _instant(period.get("end")),
        "based_on": based_on_course_id(careplan),
        "recurrent": recurrent,
        "symptom_goal_id": symptom_goal_id,
    }


def session_facts(resource: dict[str, Any]) -> SessionFacts | None:
    """The session facts of an Encounter or Appointment.

    Returns None when there is no session to keep: the resource is `entered-in-error`, has
    no id, or names no Patient.
    """
    status = resource.get("status")
    resource_type = resource.get("resourceType")
    resource_id = resource.get("id")
    if status == ENTERED_IN_ERROR or not isinstance(resource_id, str):
        return None
    if resource_type == "Encounter":
        return _encounter_facts(resource, resource_id, str(status))
    if resource_type == "Appointment":
        return _appointment_facts(resource, resource_id, str(status))
    return None


def measure_row(observation: dict[str, Any]) -> dict[str, Any] | None:
    """The `ipt_measure` row of a PHQ-9 total or item-9 Observation, else None.

    An Observation in error, without a Patient, an effective time or a valid score has
    no row: it can never count (docs/fhir-mapping.md#what-counts).
    """
    status = observation.get("status")
    if status == ENTERED_IN_ERROR or not isinstance(observation.get("id"), str):
        return None
    if is_phq9_total(observation):
        code, value, item9 = PHQ9_TOTAL, phq9_total(observation), phq9_item9(observation)
    elif has_code(observation.get("code"), LOINC, PHQ9_ITEM9):
        code, value, item9 = PHQ9_ITEM9, phq9_item9(observation), None
    else:
        return None
    patient = patient_id(observation.get("subject"))
    effective = _effective(observation)
    if patient is None or effective is None or value is None:
        return None
    members = [reference_id(m, "Observation") for m in as_list(observation.get("hasMember"))]
    return {
        "observation_id": observation["id"],
        "patient_id": patient,
        "code": code,
        "status": str(status),
        "effective": effective,
        "value": value,
        "item9": item9,
        "members": [m for m in members if m] or None,
    }


def _encounter_facts(
    encounter: dict[str, Any], resource_id: str, status: str
) -> SessionFacts | None:
    patient = patient_id(encounter.get("subject"))
    if patient is None:
        return None
    period = as_dict(encounter.get("period"))
    start = _instant(period.get("start"))
    appointments = (
        reference_id(ref, "Appointment") for ref in as_list(encounter.get("appointment"))
    )
    return SessionFacts(
        resource_type="Encounter",
        resource_id=resource_id,
        patient_id=patient,
        status=status,
        start=start,
        minutes=_duration_minutes(encounter.get("length")) or _span_minutes(start, period),
        appointment_id=next((a for a in appointments if a), None),
        is_ipt=_names_ipt(encounter.get("type")),
        explicit_course_id=session_course_link(encounter),
    )


def _appointment_facts(
    appointment: dict[str, Any], resource_id: str, status: str
) -> SessionFacts | None:
    actors = (as_dict(p).get("actor") for p in as_list(appointment.get("participant")))
    patient = next((found for found in map(patient_id, actors) if found), None)
    if patient is None:
        return None
    start = _instant(appointment.get("start"))
    minutes = appointment.get("minutesDuration")
    return SessionFacts(
        resource_type="Appointment",
        resource_id=resource_id,
        patient_id=patient,
        status=status,
        start=start,
        minutes=minutes if _is_int(minutes) else _span_minutes(start, appointment),
        appointment_id=None,
        is_ipt=_names_ipt(appointment.get("serviceType")),
        explicit_course_id=session_course_link(appointment),
    )


def _names_ipt(concepts: Any) -> bool:
    if has_code(concepts, SNOMED, IPT_THERAPY):
        return True
    return any(has_code(concepts, CPT, code) for code in CPT_PSYCHOTHERAPY)


def _effective(observation: dict[str, Any]) -> datetime | None:
    value = observation.get("effectiveDateTime") or observation.get("effectiveInstant")
    if value is None:
        value = as_dict(observation.get("effectivePeriod")).get("start")
    return _instant(value)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None


def _timing_minutes(repeat: dict[str, Any] | None) -> int | None:
    repeat = repeat or {}
    duration = repeat.get("duration")
    seconds = _SECONDS_PER.get(repeat.get("durationUnit", "min"))
    if not isinstance(duration, int | float) or isinstance(duration, bool) or seconds is None:
        return None
    return round(duration * seconds / 60)


def _duration_minutes(duration: Any) -> int | None:
    duration = as_dict(duration)
    value = duration.get("value")
    seconds = _SECONDS_PER.get(duration.get("code") or duration.get("unit") or "")
    if not isinstance(value, int | float) or isinstance(value, bool) or seconds is None:
        return None
    return round(value * seconds / 60)


def _span_minutes(start: datetime | None, period: dict[str, Any]) -> int | None:
    end = _instant(period.get("end"))
    if start is None or end is None or end <= start:
        return None
    return round((end - start) / timedelta(minutes=1))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
