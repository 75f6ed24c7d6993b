"""A session of IPT as a FHIR Encounter or Appointment, and back (docs/fhir-mapping.md).

An attended session is an Encounter (`finished`); a booked, missed or cancelled one is an
Appointment. Both carry the explicit course link, the R5 `basedOn` cross-version
extension, because R4 `Encounter.basedOn` can only point at a ServiceRequest.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from ipt_core.instants import format_instant, parse_optional_instant
from ipt_core.ipt._goal import UCUM
from ipt_core.ipt._model import Session
from ipt_core.ipt._vocabulary import IPT_THERAPY_DISPLAY
from ipt_core.ipt.codes import (
    ACT_CODE,
    APPOINTMENT_BASED_ON_EXTENSION,
    APPOINTMENT_OUTCOMES,
    CPT,
    ENCOUNTER_BASED_ON_EXTENSION,
    ENCOUNTER_OUTCOMES,
    IN_PERSON,
    IPT_THERAPY,
    SNOMED,
    VIRTUAL,
    RecordedOutcome,
    SessionMode,
)
from ipt_core.ipt.fhir_json import (
    as_dict,
    as_list,
    coding,
    concept,
    has_code,
    narrative,
    reference,
    reference_id,
    relative_reference,
)

# R4 Appointment has no class; R5 has (a CodeableConcept), so a virtual session's mode
# travels in its cross-version extension, like the course link. Absent means in person.
APPOINTMENT_CLASS_EXTENSION: Final = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.class"
)
_THERAPIST_TYPES: Final = ("Practitioner", "PractitionerRole")
_CLASS: Final[dict[SessionMode, tuple[str, str]]] = {
    "in-person": (IN_PERSON, "ambulatory"),
    "virtual": (VIRTUAL, "virtual"),
}
# The FHIR status that records each outcome: the codes' maps, read the other way.
_ENCOUNTER_STATUS: Final = {outcome: status for status, outcome in ENCOUNTER_OUTCOMES.items()}
_APPOINTMENT_STATUS: Final = {outcome: status for status, outcome in APPOINTMENT_OUTCOMES.items()}
_SECONDS_PER: Final = {"s": 1, "min": 60, "h": 3600}
_BASED_ON: Final = {
    "Encounter": ENCOUNTER_BASED_ON_EXTENSION,
    "Appointment": APPOINTMENT_BASED_ON_EXTENSION,
}


def psychotherapy_cpt(minutes: int | None) -> str | None:
    """The CPT psychotherapy code a session length implies (16-37, 38-52, >=53 minutes).

    Returns None below 16 minutes or when the length is unknown: no code applies.
    """
    if minutes is None or minutes < 16:
        return None
    if minutes <= 37:
        return "90832"
    return "90834" if minutes <= 52 else "90837"


def session_to_encounter(session: Session) -> dict[str, Any]:
    """Build the Encounter of an attended (`finished`) or cancelled session.

    Raises:
        ValueError: for a no-show or a booking, which only an Appointment records.
    """
    status = _ENCOUNTER_STATUS.get(session.outcome)
    if status is None:
        raise ValueError(f"a {session.outcome} session is recorded as an Appointment")
    encounter: dict[str, Any] = {"resourceType": "Encounter"}
    if session.encounter_id:
        encounter["id"] = session.encounter_id
    encounter |= {
        "text": _narrative(session),
        **_course_link("Encounter", session.course_id),
        "status": status,
        "class": coding(ACT_CODE, *_CLASS[session.mode]),
        "type": _types(session.minutes),
        "subject": reference(session.patient),
    }
    if session.therapist:
        encounter["participant"] = [{"individual": reference(session.therapist)}]
    if session.appointment_id:
        encounter["appointment"] = [reference(f"Appointment/{session.appointment_id}")]
    encounter["period"] = _period(session)
    if session.minutes is not None:
        encounter["length"] = _minutes(session.minutes)
    return encounter


def session_to_appointment(session: Session) -> dict[str, Any]:
    """Build the Appointment of a session: booked, fulfilled, noshow or cancelled.

    Raises:
        ValueError: when the session's length is unknown (an Appointment has start and end).
    """
    if session.minutes is None:
        raise ValueError("an Appointment needs the session's length")
    appointment: dict[str, Any] = {"resourceType": "Appointment"}
    if session.appointment_id:
        appointment["id"] = session.appointment_id
    extensions = _course_link("Appointment", session.course_id).get("extension", [])
    if session.mode == "virtual":
        virtual = concept(ACT_CODE, *_CLASS["virtual"])
        extensions.append({"url": APPOINTMENT_CLASS_EXTENSION, "valueCodeableConcept": virtual})
    appointment["text"] = _narrative(session)
    if extensions:
        appointment["extension"] = extensions
    appointment |= {
        "status": _APPOINTMENT_STATUS[session.outcome],
        "serviceType": [concept(SNOMED, IPT_THERAPY, IPT_THERAPY_DISPLAY)],
        **_period(session),
        "minutesDuration": session.minutes,
        "participant": [_participant(session.patient)],
    }
    if session.therapist:
        appointment["participant"].append(_participant(session.therapist))
    return appointment


def session_from_encounter(encounter: dict[str, Any]) -> Session:
    """Read a session from its Encounter (`finished` → attended, `cancelled` → cancelled).

    Raises:
        ValueError: for any other Encounter status.
        pydantic.ValidationError: when the Encounter lacks a Patient subject or a start.
    """
    outcome = _outcome(ENCOUNTER_OUTCOMES, encounter.get("status"))
    period = as_dict(encounter.get("period"))
    participants = as_list(encounter.get("participant"))
    appointments = (
        reference_id(ref, "Appointment") for ref in as_list(encounter.get("appointment"))
    )
    return Session.model_validate(
        {
            "patient": relative_reference(encounter.get("subject"), "Patient"),
            "start": parse_optional_instant(period.get("start")),
            "minutes": _duration_minutes(encounter.get("length")) or _span_minutes(period),
            "outcome": outcome,
            "mode": _mode(encounter.get("class")),
            "course_id": session_course_link(encounter),
            "therapist": _first_reference(participants, "individual", _THERAPIST_TYPES),
            "encounter_id": encounter.get("id"),
            "appointment_id": next((ref for ref in appointments if ref), None),
        }
    )


def session_from_appointment(appointment: dict[str, Any]) -> Session:
    """Read a session from its Appointment (`booked`, `fulfilled`, `noshow`, `cancelled`).

    Raises:
        ValueError: for any other Appointment status.
        pydantic.ValidationError: when no participant is a Patient or there is no start.
    """
    outcome = _outcome(APPOINTMENT_OUTCOMES, appointment.get("status"))
    participants = as_list(appointment.get("participant"))
    minutes = appointment.get("minutesDuration")
    return Session.model_validate(
        {
            "patient": _first_reference(participants, "actor", ("Patient",)),
            "start": parse_optional_instant(appointment.get("start")),
            "minutes": minutes if isinstance(minutes, int) else _span_minutes(appointment),
            "outcome": outcome,
            "mode": _appointment_mode(appointment),
            "course_id": session_course_link(appointment),
            "therapist": _first_reference(participants, "actor", _THERAPIST_TYPES),
            "appointment_id": appointment.get("id"),
        }
    )


def session_course_link(resource: dict[str, Any]) -> str | None:
    """The course id of a session's explicit link (linking rule 1), or None.

    The rules are in docs/fhir-mapping.md#linking-sessions-to-courses.

    Reads the `basedOn` cross-version extension of an Encounter or Appointment.
    """
    url = _BASED_ON.get(resource.get("resourceType", ""))
    for extension in as_list(resource.get("extension")):
        if isinstance(extension, dict) and extension.get("url") == url:
            return reference_id(extension.get("valueReference"), "CarePlan")
    return None


def _course_link(resource_type: str, course_id: str | None) -> dict[str, Any]:
    if course_id is None:
        return {}
    link = {"url": _BASED_ON[resource_type], "valueReference": reference(f"CarePlan/{course_id}")}
    return {"extension": [link]}


def _types(minutes: int | None) -> list[dict[str, Any]]:
    types = [concept(SNOMED, IPT_THERAPY, IPT_THERAPY_DISPLAY)]
    cpt = psychotherapy_cpt(minutes)
    return [*types, concept(CPT, cpt)] if cpt else types


def _period(session: Session) -> dict[str, Any]:
    period = {"start": format_instant(session.start)}
    if session.minutes is not None:
        period["end"] = format_instant(session.start + timedelta(minutes=session.minutes))
    return period


def _minutes(minutes: int) -> dict[str, Any]:
    return {"value": minutes, "unit": "min", "system": UCUM, "code": "min"}


def _participant(actor: str) -> dict[str, Any]:
    return {"actor": reference(actor), "required": "required", "status": "accepted"}


def _narrative(session: Session) -> dict[str, Any]:
    facts = [("Outcome", session.outcome), ("Start", format_instant(session.start))]
    if session.minutes is not None:
        facts.append(("Length", f"{session.minutes} minutes"))
    facts.append(("Mode", session.mode))
    return narrative("Interpersonal psychotherapy session", facts)


def _outcome(outcomes: Mapping[str, RecordedOutcome], status: Any) -> RecordedOutcome:
    if isinstance(status, str) and status in outcomes:
        return outcomes[status]
    raise ValueError(f"status {status!r} is not a recorded IPT session")


def _mode(session_class: Any) -> SessionMode:
    if isinstance(session_class, dict) and session_class.get("code") == VIRTUAL:
        return "virtual" if session_class.get("system") == ACT_CODE else "in-person"
    return "in-person"


def _appointment_mode(appointment: dict[str, Any]) -> SessionMode:
    for extension in as_list(appointment.get("extension")):
        if isinstance(extension, dict) and extension.get("url") == APPOINTMENT_CLASS_EXTENSION:
            virtual = has_code(extension.get("valueCodeableConcept"), ACT_CODE, VIRTUAL)
            return "virtual" if virtual else "in-person"
    return "in-person"


def _first_reference(participants: list[Any], key: str, types: tuple[str, ...]) -> str | None:
    found = (relative_reference(p.get(key), *types) for p in participants if isinstance(p, dict))
    return next((ref for ref in found if ref), None)


def _duration_minutes(duration: Any) -> int | None:
    if not isinstance(duration, dict) or not isinstance(duration.get("value"), int | float):
        return None
    seconds = _SECONDS_PER.get(duration.get("code") or duration.get("unit") or "")
    return round(duration["value"] * seconds / 60) if seconds else None


def _span_minutes(period: dict[str, Any]) -> int | None:
    start = parse_optional_instant(period.get("start"))
    end = parse_optional_instant(period.get("end"))
    if start is None or end is None or end <= start:
        return None
    return round((end - start) / timedelta(minutes=1))
