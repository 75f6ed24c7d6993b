"""The course projection: one `ipt_course` row per IPT course CarePlan, as stored now.

A course write also changes which sessions it lists in `activity.outcomeReference` (linking
rule 2): those sessions are linked again. Auto-links are never moved by a course write
(docs/fhir-mapping.md#linking-sessions-to-courses), so completing a course keeps its sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.ipt._careplan_facts import is_ipt_course, outcome_references
from ipt_core.ipt._condition import is_recurrent_depression
from ipt_core.ipt._goal import is_symptom_goal
from ipt_core.ipt.fhir_json import as_list, reference_id
from ipt_core.ipt.projections import repository as repo
from ipt_core.ipt.projections._rows import ENTERED_IN_ERROR, course_row
from ipt_core.ipt.projections._sessions import reproject_session

__all__ = ["project_course", "project_courses", "refresh_courses"]


async def project_course(
    conn: AsyncConnection,
    course_id: str,
    careplan: dict[str, Any] | None,
    previous: dict[str, Any] | None,
) -> set[str]:
    """Bring a CarePlan's course row, and the sessions it lists, up to date.

    Args:
        conn: the write's connection.
        course_id: the CarePlan id.
        careplan: its current content; None when it was deleted.
        previous: the content before this write, if any.

    Returns:
        The ids of the courses whose facts changed: this one, its acute course, its
        maintenance courses, and the courses of sessions linked anew.
    """
    old = await repo.course_row(conn, course_id)
    affected = {course_id, old.based_on if old is not None else None}
    row = await _row(conn, careplan) if careplan is not None else None
    if row is not None:
        await repo.upsert(conn, "ipt_course", row)
        affected.add(row["based_on"])
    elif old is not None:
        await repo.delete_course(conn, course_id)
    affected |= await repo.maintenance_course_ids(conn, [course_id])
    listed_now = _listed(careplan) if row is not None else set()
    for reference in sorted(_listed(previous) ^ listed_now):
        affected |= await reproject_session(conn, reference)
    return {found for found in affected if found}


async def project_courses(
    conn: AsyncConnection,
    courses: Sequence[tuple[str, dict[str, Any] | None, dict[str, Any] | None]],
) -> list[set[str]]:
    """`project_course` of a run of CarePlan writes (each at most once), set-based.

    Args:
        conn: the write's connection.
        courses: (CarePlan id, current content or None when deleted, content before).

    A course's row depends on its CarePlan and the Conditions and Goals it cites, which no
    other course's projection changes: the rows of a run are read, written and deleted with
    one statement each, and the maintenance courses of all of them read with one (a bulk
    load's five courses took three statements each). A run in which a course starts or stops
    listing a session goes one by one: the session is linked again against the courses
    projected so far, as one by one. Returns the courses each write affects, in order (the
    maintenance courses of the whole run's rows, which the recompute requests unite anyway).
    """
    if any(_listed(previous) != _listed(current) for _, current, previous in courses):
        return [await project_course(conn, *course) for course in courses]
    ids = [course_id for course_id, _, _ in courses]
    before = await repo.courses_based_on(conn, ids)
    rows = [await _row(conn, current) if current is not None else None for _, current, _ in courses]
    await repo.upsert_many(conn, "ipt_course", [row for row in rows if row is not None])
    gone = [i for i, row in zip(ids, rows, strict=True) if row is None and i in before]
    await repo.delete_courses(conn, gone)
    followers = await repo.maintenance_courses_of(conn, ids)
    affected: list[set[str]] = []
    for course_id, row in zip(ids, rows, strict=True):
        found = {course_id, before.get(course_id), row["based_on"] if row is not None else None}
        affected.append({c for c in found | followers.get(course_id, set()) if c})
    return affected


async def refresh_courses(conn: AsyncConnection, course_ids: Iterable[str]) -> set[str]:
    """Re-read courses after a Condition or Goal they reference changed; return their ids."""
    ids = set(course_ids)
    careplans = await repo.read_resources(conn, "CarePlan", ids)
    for careplan in careplans.values():
        if (row := await _row(conn, careplan)) is not None:
            await repo.upsert(conn, "ipt_course", row)
    return ids


async def _row(conn: AsyncConnection, careplan: dict[str, Any]) -> dict[str, Any] | None:
    if not is_ipt_course(careplan):
        return None
    return course_row(
        careplan,
        recurrent=await _recurrent(conn, careplan),
        symptom_goal_id=await _symptom_goal_id(conn, careplan),
    )


async def _recurrent(conn: AsyncConnection, careplan: dict[str, Any]) -> bool:
    ids = _referenced_ids(careplan.get("addresses"), "Condition")
    conditions = await repo.read_resources(conn, "Condition", ids)
    return is_recurrent_depression(conditions.values())


async def _symptom_goal_id(conn: AsyncConnection, careplan: dict[str, Any]) -> str | None:
    ids = _referenced_ids(careplan.get("goal"), "Goal")
    goals = await repo.read_resources(conn, "Goal", ids)
    # The first symptom Goal in the CarePlan's order, as `course_from_fhir` reads it.
    return next(
        (goal_id for goal_id in ids if goal_id in goals and is_symptom_goal(goals[goal_id])), None
    )


def _referenced_ids(references: Any, resource_type: str) -> list[str]:
    found = (reference_id(ref, resource_type) for ref in as_list(references))
    return list(dict.fromkeys(found_id for found_id in found if found_id))


def _listed(careplan: dict[str, Any] | None) -> set[str]:
    """The sessions a course lists (rule 2); a course in error lists none."""
    if (
        careplan is None
        or not is_ipt_course(careplan)
        or careplan.get("status") == ENTERED_IN_ERROR
    ):
        return set()
    return set(outcome_references(careplan))
