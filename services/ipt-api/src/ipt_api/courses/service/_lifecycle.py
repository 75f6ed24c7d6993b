"""A course's life after enrolment: activate, hold, resume, complete, stop; practice.

CarePlan status moves `draft` → `active` ⇄ `on-hold` → `completed` | `revoked` (stopped);
completing or stopping sets `period.end` (docs/fhir-mapping.md#course-as-careplan). A status
that does not allow the change is a 409.
"""

from __future__ import annotations

from ipt_api.courses.schemas import PracticeRequest, PracticeUpdate
from ipt_api.courses.service._course_io import load_course, require_status, save_course
from ipt_core.fhir.errors import BusinessRuleViolated, ResourceNotFound
from ipt_core.fhir.store import ResourceStore
from ipt_core.ipt import PracticeAssignment

__all__ = [
    "activate",
    "add_practice",
    "complete",
    "hold",
    "resume",
    "stop",
    "update_practice",
]

_OPEN = frozenset({"draft", "active", "on-hold"})


async def activate(store: ResourceStore, course_id: str) -> None:
    """Patient and therapist agreed the outline: the draft course becomes active."""
    stored = await load_course(store, course_id, for_update=True)
    require_status(stored.course, {"draft"}, "activate the course")
    await save_course(store, stored, stored.course.model_copy(update={"status": "active"}))


async def hold(store: ResourceStore, course_id: str, reason: str | None) -> None:
    """Pause an active course."""
    stored = await load_course(store, course_id, for_update=True)
    require_status(stored.course, {"active"}, "put the course on hold")
    note = f"Course put on hold: {reason}" if reason else None
    await save_course(
        store, stored, stored.course.model_copy(update={"status": "on-hold"}), note=note
    )


async def resume(store: ResourceStore, course_id: str) -> None:
    """Resume a course on hold."""
    stored = await load_course(store, course_id, for_update=True)
    require_status(stored.course, {"on-hold"}, "resume the course")
    await save_course(store, stored, stored.course.model_copy(update={"status": "active"}))


async def complete(store: ResourceStore, course_id: str) -> None:
    """Close the course as completed, ending its period now."""
    await _close(store, course_id, "completed", "complete the course", note=None)


async def stop(store: ResourceStore, course_id: str, reason: str) -> None:
    """Stop the course early (CarePlan `revoked`), ending its period now; keep the reason."""
    await _close(store, course_id, "revoked", "stop the course", note=f"Course stopped: {reason}")


async def add_practice(store: ResourceStore, course_id: str, request: PracticeRequest) -> int:
    """Assign a social practice activity; return its number (from 1)."""
    stored = await load_course(store, course_id, for_update=True)
    require_status(stored.course, _OPEN, "assign practice")
    assignment = PracticeAssignment(description=request.description, status=request.status)
    practice = (*stored.course.practice_assignments, assignment)
    await save_course(
        store, stored, stored.course.model_copy(update={"practice_assignments": practice})
    )
    return len(practice)


async def update_practice(
    store: ResourceStore, course_id: str, number: int, request: PracticeUpdate
) -> None:
    """Change the status or description of practice assignment `number` (from 1).

    Raises:
        ResourceNotFound: when the course has no such assignment.
    """
    stored = await load_course(store, course_id, for_update=True)
    require_status(stored.course, _OPEN, "update practice")
    practice = list(stored.course.practice_assignments)
    if not 1 <= number <= len(practice):
        raise ResourceNotFound(f"Course {course_id!r} has no practice assignment {number}")
    changes = request.model_dump(exclude_none=True)
    practice[number - 1] = practice[number - 1].model_copy(update=changes)
    course = stored.course.model_copy(update={"practice_assignments": tuple(practice)})
    await save_course(store, stored, course)


async def _close(
    store: ResourceStore, course_id: str, status: str, action: str, *, note: str | None
) -> None:
    stored = await load_course(store, course_id, for_update=True)
    allowed = {"active", "on-hold"} if status == "completed" else _OPEN
    require_status(stored.course, allowed, action)
    end = store.clock()
    if end < stored.course.start:
        raise BusinessRuleViolated(
            f"Cannot {action} before it starts", expression=("CarePlan.period.end",)
        )
    course = stored.course.model_copy(update={"status": status, "end": end})
    await save_course(store, stored, course, note=note)
