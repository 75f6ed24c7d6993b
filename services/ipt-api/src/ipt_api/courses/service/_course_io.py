"""Reading a course from the FHIR store and writing a changed course back through it.

A write goes through `ResourceStore.update` with `If-Match` on the version read, so two
concurrent changes of one course cannot overwrite each other, and the store's listeners (IPT
rules, projections, recompute requests) run as for any FHIR write. Elements the domain does
not manage (an EHR's extensions, notes, other activities and categories) are kept.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from ipt_api.courses.errors import CourseStateConflict
from ipt_core.fhir.errors import BusinessRuleViolated, ResourceNotFound
from ipt_core.fhir.model import ResourcePut
from ipt_core.fhir.store import ResourceStore
from ipt_core.instants import format_instant
from ipt_core.ipt import Course, course_from_fhir, course_to_careplan, detail_has, is_ipt_course
from ipt_core.ipt.codes import (
    ACTIVITY_SYSTEM,
    ASSESS_PLAN,
    COURSE_TYPE_SYSTEM,
    IPT_THERAPY,
    PHASE_EXTENSION,
    PROBLEM_AREA_SYSTEM,
    SNOMED,
    SOCIAL_PRACTICE,
    US_CORE_CAREPLAN_CATEGORY,
)
from ipt_core.ipt.fhir_json import as_list, reference_id

__all__ = [
    "StoredCourse",
    "course_put",
    "load_course",
    "merged_careplan",
    "require_status",
    "save_course",
]

# Categories the mapping writes; any other category of an EHR's CarePlan is kept as sent.
_MAPPED_CATEGORY_CODES = frozenset(
    {(US_CORE_CAREPLAN_CATEGORY, ASSESS_PLAN), (SNOMED, IPT_THERAPY)}
)
_MAPPED_CATEGORY_SYSTEMS = frozenset({COURSE_TYPE_SYSTEM, PROBLEM_AREA_SYSTEM})


@dataclass(frozen=True)
class StoredCourse:
    """A course as read: its CarePlan JSON, the version read, and the domain model."""

    careplan: dict[str, Any]
    version: int
    course: Course


async def load_course(
    store: ResourceStore, course_id: str, *, for_update: bool = False
) -> StoredCourse:
    """Read an IPT course and its Goals (locking the CarePlan when about to change it).

    Locking matters: the status engine writes the phase back to the CarePlan at any time, and
    without the lock a clinician's change could fail on that version bump with a 412.

    Raises:
        ResourceNotFound: when there is no IPT course with that id (or it is in error).
        BusinessRuleViolated: when the stored CarePlan does not read as a course.
    """
    stored = await store.read("CarePlan", course_id, for_update=for_update)
    careplan: dict[str, Any] = orjson.loads(stored.content or "{}")
    if not is_ipt_course(careplan) or careplan.get("status") == "entered-in-error":
        raise ResourceNotFound(f"No IPT course {course_id!r}")
    goal_ids = [reference_id(ref, "Goal") for ref in as_list(careplan.get("goal"))]
    goals = await _goals(store, [goal_id for goal_id in goal_ids if goal_id])
    try:
        course = course_from_fhir(careplan, goals)
    except ValidationError as error:
        raise BusinessRuleViolated(
            f"CarePlan/{course_id} cannot be managed as an IPT course: {error.errors()[0]['msg']}"
        ) from None
    return StoredCourse(careplan, stored.version_id, course)


def require_status(course: Course, allowed: Collection[str], action: str) -> None:
    """Refuse (409) an action the course's status does not allow."""
    if course.status not in allowed:
        raise CourseStateConflict(
            f"Cannot {action}: the course is {course.status} "
            f"(allowed when {' or '.join(sorted(allowed))})",
            expression=("status",),
        )


async def save_course(
    store: ResourceStore, stored: StoredCourse, course: Course, *, note: str | None = None
) -> None:
    """Write a changed course back over the version read, adding `note` when given."""
    put = course_put(store, stored, course, note=note)
    await store.update("CarePlan", course.id, put.body, if_match=put.if_match)


def course_put(
    store: ResourceStore, stored: StoredCourse, course: Course, *, note: str | None = None
) -> ResourcePut:
    """The write of `save_course`, for a set-based write with other resources (`put_many`)."""
    careplan = merged_careplan(stored.careplan, course_to_careplan(course))
    if note is not None:
        entry = {"text": note, "time": format_instant(store.clock())}
        careplan["note"] = [*as_list(careplan.get("note")), entry]
    return ResourcePut("CarePlan", course.id, careplan, if_match=stored.version)


def merged_careplan(original: dict[str, Any], rebuilt: dict[str, Any]) -> dict[str, Any]:
    """The rebuilt CarePlan, keeping whatever of the original the mapping does not manage."""
    merged = {**rebuilt, **{k: v for k, v in original.items() if k not in rebuilt}}
    others = [e for e in as_list(original.get("extension")) if _url(e) != PHASE_EXTENSION]
    if extensions := [*others, *as_list(rebuilt.get("extension"))]:
        merged["extension"] = extensions
    foreign = [c for c in as_list(original.get("category")) if not _mapped_category(c)]
    merged["category"] = [*rebuilt["category"], *foreign]
    kept = [a for a in as_list(original.get("activity")) if not _mapped_activity(a)]
    merged["activity"] = [*rebuilt["activity"], *kept]
    return merged


async def _goals(store: ResourceStore, goal_ids: list[str]) -> list[dict[str, Any]]:
    """The Goals of `goal_ids` that exist and are not deleted, in order, with one read."""
    if not goal_ids:
        return []
    found = await store.read_many([("Goal", goal_id) for goal_id in dict.fromkeys(goal_ids)])
    rows = (found.get(("Goal", goal_id)) for goal_id in goal_ids)
    return [
        orjson.loads(row.content or "{}") for row in rows if row is not None and not row.deleted
    ]


def _url(extension: Any) -> Any:
    return extension.get("url") if isinstance(extension, dict) else None


def _mapped_category(category: Any) -> bool:
    codings = category.get("coding", []) if isinstance(category, dict) else []
    return any(
        isinstance(c, dict)
        and (
            c.get("system") in _MAPPED_CATEGORY_SYSTEMS
            or (c.get("system"), c.get("code")) in _MAPPED_CATEGORY_CODES
        )
        for c in codings
    )


def _mapped_activity(activity: Any) -> bool:
    """Whether the mapping rebuilds this activity: the sessions one or a readable practice."""
    if not isinstance(activity, dict):
        return False
    if detail_has(activity, SNOMED, IPT_THERAPY):
        return True
    status = activity.get("detail", {}).get("status")
    # A practice in error (or without status) is not read back, so it must be kept as is.
    readable = status not in (None, "entered-in-error")
    return detail_has(activity, ACTIVITY_SYSTEM, SOCIAL_PRACTICE) and readable
