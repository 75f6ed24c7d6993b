"""HTTP routes of the IPT domain API at /ipt/v1 (HTTP only; the work is in `service`).

Plain JSON in and out; every error is an OperationOutcome (`application/fhir+json`) with the
status of its FhirError. Each route checks the caller's SMART scopes for the FHIR types the
use case reads or writes, exactly as the FHIR API would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ipt_api.authz import authorize, require_course
from ipt_api.courses import service
from ipt_api.courses.idempotency import idempotent, request_fingerprint
from ipt_api.courses.responses import CourseList, CourseView, RecordedSession
from ipt_api.courses.schemas import (
    EnrolmentRequest,
    HoldRequest,
    MaintenanceRequest,
    PracticeRequest,
    PracticeUpdate,
    SessionRequest,
    StopRequest,
)
from ipt_api.deps import PrincipalDep, StoreDep
from ipt_api.json_route import StrictJsonRoute
from ipt_api.principal import Principal
from ipt_core.fhir.store import ResourceStore
from ipt_core.ipt import Phase

__all__ = ["courses_router"]

_OUTCOME = {"application/fhir+json": {"schema": {"$ref": "#/components/schemas/Resource"}}}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"description": "Malformed request (OperationOutcome)", "content": _OUTCOME},
    403: {"description": "The token's scopes do not allow it", "content": _OUTCOME},
    404: {"description": "No such course", "content": _OUTCOME},
    409: {"description": "The course's status does not allow it", "content": _OUTCOME},
    422: {"description": "An IPT rule is broken (OperationOutcome)", "content": _OUTCOME},
}
_ENROLMENT_TYPES: Final = ("Patient", "Condition", "Goal", "CarePlan", "Observation")
_SESSION_TYPES: Final = ("Encounter", "Appointment", "Observation", "CarePlan")
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string; a retry with the same key and body replays the answer",
    ),
]

courses_router = APIRouter(
    prefix="/ipt/v1", tags=["Courses"], responses=_ERRORS, route_class=StrictJsonRoute
)


@courses_router.post(
    "/courses", status_code=201, response_model=CourseView, summary="Enrol a patient in IPT"
)
async def enrol(
    body: EnrolmentRequest,
    store: StoreDep,
    principal: PrincipalDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create a draft course from the intake outline: CarePlan, Goals, Conditions, PHQ-9."""
    _allow(principal, "create", *_ENROLMENT_TYPES)

    async def action() -> CourseView:
        return await service.course_view(store, await service.enrol(store, body))

    return await _once(store, principal, request, body, idempotency_key, 201, action)


@courses_router.get("/courses", response_model=CourseList, summary="Find courses")
async def find_courses(
    store: StoreDep,
    principal: PrincipalDep,
    patient: Annotated[str | None, Query(description="`Patient/{id}` or the id")] = None,
    therapist: Annotated[str | None, Query(description="`Practitioner/{id}` or the id")] = None,
    phase: Annotated[Phase | None, Query(description="Only courses in this phase")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CourseList:
    """Courses of a patient and/or therapist, latest start first."""
    _allow(principal, "search", "CarePlan")
    patient_id = patient.removeprefix("Patient/") if patient else None
    compartment = principal.compartment
    if compartment is not None:  # a patient/ token sees its own patient's courses only
        if patient_id not in {None, compartment}:
            return CourseList(courses=[])
        patient_id = compartment
    courses = await service.course_summaries(
        store.conn,
        patient_id=patient_id,
        therapist_refs=_therapist_refs(therapist),
        phase=phase,
        limit=limit,
        now=store.clock(),
    )
    return CourseList(courses=courses)


@courses_router.get("/courses/{course_id}", response_model=CourseView, summary="Read a course")
async def read_course(course_id: str, store: StoreDep, principal: PrincipalDep) -> CourseView:
    """The course with its goals, practice assignments and numbered sessions."""
    authorize(principal, "CarePlan", "read", id_=course_id)
    await require_course(store.conn, principal, course_id)
    return await service.course_view(store, course_id)


@courses_router.post(
    "/courses/{course_id}/sessions",
    status_code=201,
    response_model=RecordedSession,
    summary="Record a session",
)
async def record_session(
    course_id: str,
    body: SessionRequest,
    store: StoreDep,
    principal: PrincipalDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Record an attended, missed or cancelled session, with its PHQ-9 and notes."""
    _allow(principal, "create", *_SESSION_TYPES)
    await require_course(store.conn, principal, course_id)

    async def action() -> RecordedSession:
        session, written = await service.record_session(store, course_id, body)
        view = await service.course_view(store, course_id)
        recorded = next(s for s in view.sessions if session in (s.encounter, s.appointment))
        return RecordedSession(course_id=course_id, session=recorded, resources=written)

    return await _once(store, principal, request, body, idempotency_key, 201, action)


@courses_router.post(
    "/courses/{course_id}/activate", response_model=CourseView, summary="Activate a course"
)
async def activate(course_id: str, store: StoreDep, principal: PrincipalDep) -> CourseView:
    """The treatment contract is agreed: the draft course becomes active."""
    return await _change(store, principal, course_id, partial(service.activate, store, course_id))


@courses_router.post("/courses/{course_id}/hold", response_model=CourseView, summary="Pause")
async def hold(
    course_id: str,
    store: StoreDep,
    principal: PrincipalDep,
    body: Annotated[HoldRequest | None, Body()] = None,
) -> CourseView:
    """Put an active course on hold, with an optional reason."""
    reason = body.reason if body is not None else None
    return await _change(
        store, principal, course_id, partial(service.hold, store, course_id, reason)
    )


@courses_router.post("/courses/{course_id}/resume", response_model=CourseView, summary="Resume")
async def resume(course_id: str, store: StoreDep, principal: PrincipalDep) -> CourseView:
    """Resume a course on hold."""
    return await _change(store, principal, course_id, partial(service.resume, store, course_id))


@courses_router.post(
    "/courses/{course_id}/complete", response_model=CourseView, summary="Complete a course"
)
async def complete(course_id: str, store: StoreDep, principal: PrincipalDep) -> CourseView:
    """Close the course as completed; its period ends now."""
    return await _change(store, principal, course_id, partial(service.complete, store, course_id))


@courses_router.post("/courses/{course_id}/stop", response_model=CourseView, summary="Stop early")
async def stop(
    course_id: str, body: StopRequest, store: StoreDep, principal: PrincipalDep
) -> CourseView:
    """Stop the course before it is completed (CarePlan `revoked`), with the reason."""
    change = partial(service.stop, store, course_id, body.reason)
    return await _change(store, principal, course_id, change)


@courses_router.post(
    "/courses/{course_id}/practice",
    status_code=201,
    response_model=CourseView,
    summary="Assign social practice",
)
async def add_practice(
    course_id: str, body: PracticeRequest, store: StoreDep, principal: PrincipalDep
) -> CourseView:
    """Assign a social activity to practise; it is numbered from 1 in the course."""
    change = partial(service.add_practice, store, course_id, body)
    return await _change(store, principal, course_id, change)


@courses_router.patch(
    "/courses/{course_id}/practice/{number}",
    response_model=CourseView,
    summary="Update social practice",
)
async def update_practice(
    course_id: str, number: int, body: PracticeUpdate, store: StoreDep, principal: PrincipalDep
) -> CourseView:
    """Change a practice assignment's status or description."""
    change = partial(service.update_practice, store, course_id, number, body)
    return await _change(store, principal, course_id, change)


@courses_router.post(
    "/courses/{course_id}/maintenance",
    status_code=201,
    response_model=CourseView,
    summary="Start maintenance",
)
async def start_maintenance(
    course_id: str,
    store: StoreDep,
    principal: PrincipalDep,
    body: Annotated[MaintenanceRequest | None, Body()] = None,
) -> CourseView:
    """Start a monthly maintenance course (IPT-M) `basedOn` a completed acute course."""
    _allow(principal, "create", "Goal", "CarePlan")
    await require_course(store.conn, principal, course_id)
    new_id = await service.start_maintenance(store, course_id, body or MaintenanceRequest())
    return await service.course_view(store, new_id)


async def _change(
    store: ResourceStore,
    principal: Principal,
    course_id: str,
    change: Callable[[], Awaitable[Any]],
) -> CourseView:
    """Run a change of the course's CarePlan, then answer with the course as it is now."""
    authorize(principal, "CarePlan", "update", id_=course_id)
    await require_course(store.conn, principal, course_id)
    await change()
    return await service.course_view(store, course_id)


async def _once(
    store: ResourceStore,
    principal: Principal,
    request: Request,
    body: BaseModel,
    key: str | None,
    status_code: int,
    action: Callable[[], Awaitable[BaseModel]],
) -> JSONResponse:
    return await idempotent(
        store.conn,
        scope=principal.subject,
        key=key,
        fingerprint=request_fingerprint(request.method, request.url.path, body),
        status_code=status_code,
        now=store.clock(),
        action=action,
    )


def _allow(principal: Principal, interaction: str, *resource_types: str) -> None:
    for resource_type in resource_types:
        authorize(principal, resource_type, interaction)


def _therapist_refs(therapist: str | None) -> list[str]:
    if therapist is None:
        return []
    if "/" in therapist:
        return [therapist]
    return [f"Practitioner/{therapist}", f"PractitionerRole/{therapist}"]
