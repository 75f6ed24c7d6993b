"""Recording a session: Encounter or Appointment, PHQ-9 and note, and the course's link to it.

An attended session is an Encounter (`finished`); a no-show or a cancelled session is an
Appointment (`noshow`, `cancelled`), as docs/fhir-mapping.md maps them. The session carries the
explicit course link (rule 1) and the course lists it in `outcomeReference` (rule 2), all in
the request's one transaction, written with one set-based `put_many` (in that order: session,
PHQ-9, note, course), as a transaction Bundle of the same writes would be.
"""

from __future__ import annotations

from typing import Any, Final

from ipt_api.courses.schemas import SessionRequest
from ipt_api.courses.service._course_io import course_put, load_course, require_status
from ipt_core.fhir.errors import BusinessRuleViolated
from ipt_core.fhir.model import ResourcePut
from ipt_core.fhir.store import PutFailed, ResourceStore
from ipt_core.ids import new_id
from ipt_core.instants import format_instant
from ipt_core.ipt import (
    Course,
    Phq9,
    Session,
    phq9_to_observation,
    session_to_appointment,
    session_to_encounter,
)
from ipt_core.ipt.codes import LOINC, PROGRESS_NOTE
from ipt_core.ipt.fhir_json import concept, narrative, reference

__all__ = ["record_session"]

PROGRESS_NOTE_DISPLAY: Final = "Mental health Note"


async def record_session(
    store: ResourceStore, course_id: str, request: SessionRequest
) -> tuple[str, list[str]]:
    """Record a session of an active course.

    Returns:
        The session's reference (`Encounter/…` or `Appointment/…`) and every resource written.

    Raises:
        CourseStateConflict: when the course is not active (e.g. completed or a draft).
        BusinessRuleViolated: when the session is before the course start or in the future,
            or a PHQ-9 comes with a session that did not take place.
    """
    stored = await load_course(store, course_id, for_update=True)
    course = stored.course
    require_status(course, {"active"}, "record a session")
    _check_session(course, request, store)
    # The request's fields of the same name, with the course's patient and therapist.
    session = Session(
        **request.model_dump(include={"start", "minutes", "outcome", "mode"}),
        patient=course.patient,
        course_id=course.id,
        therapist=course.therapist,
    )
    puts = [_session_put(session, request.notes)]
    session_ref = f"{puts[0].resource_type}/{puts[0].id}"
    encounter_id = puts[0].id if puts[0].resource_type == "Encounter" else None
    if request.phq9 is not None:
        phq9 = Phq9(
            patient=course.patient,
            total=request.phq9.total,
            item9=request.phq9.item9,
            effective=request.start,
            encounter_id=encounter_id,
            goal_id=course.symptom_goal_id,
        )
        puts.append(_created("Observation", phq9_to_observation(phq9)))
    if request.notes is not None and encounter_id is not None:
        puts.append(_created("Observation", _progress_note(course, encounter_id, request)))
    listed = course.model_copy(
        update={"session_references": (*course.session_references, session_ref)}
    )
    puts.append(course_put(store, stored, listed))
    try:
        await store.put_many(puts)
    except PutFailed as failed:
        raise failed.error from None
    return session_ref, [f"{put.resource_type}/{put.id}" for put in puts]


def _created(resource_type: str, body: dict[str, Any]) -> ResourcePut:
    return ResourcePut(resource_type, new_id(), body, create=True)


def _check_session(course: Course, request: SessionRequest, store: ResourceStore) -> None:
    if request.start < course.start:
        raise BusinessRuleViolated(
            f"The session is before the course starts ({format_instant(course.start)})",
            expression=("start",),
        )
    if request.start > store.clock():
        raise BusinessRuleViolated(
            "A session is recorded once it has taken place: its start is in the future",
            expression=("start",),
        )
    if request.phq9 is not None and request.outcome != "attended":
        raise BusinessRuleViolated(
            f"A PHQ-9 is taken at an attended session, not a {request.outcome} one",
            expression=("phq9",),
        )


def _session_put(session: Session, notes: str | None) -> ResourcePut:
    if session.outcome == "attended":
        return _created("Encounter", session_to_encounter(session))
    appointment = session_to_appointment(session)
    if notes is not None:
        appointment["comment"] = notes  # an Appointment carries its own free-text comment
    return _created("Appointment", appointment)


def _progress_note(course: Course, encounter_id: str, request: SessionRequest) -> dict[str, Any]:
    """The session's notes as a mental health progress note (LOINC 34904-3) Observation.

    R4 Encounter has no note element; an Observation keeps the text with its Encounter.
    """
    assert request.notes is not None
    return {
        "resourceType": "Observation",
        "text": narrative("Mental health progress note", [("Note", request.notes)]),
        "status": "final",
        "code": {**concept(LOINC, PROGRESS_NOTE, PROGRESS_NOTE_DISPLAY)},
        "subject": reference(course.patient),
        "encounter": reference(f"Encounter/{encounter_id}"),
        "effectiveDateTime": format_instant(request.start),
        "valueString": request.notes,
    }
