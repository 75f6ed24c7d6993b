"""All SQL of the IPT projections: the ipt_course, ipt_session and ipt_measure rows.

The one repository of that table family (docs/architecture.md#where-things-live): the
projection listener writes through it, other write listeners and the EHR course summary read
through it. Resources are read through the resource store (current, not deleted): the
projections run inside the store's write, after the resource row is written, so they see the
transaction's own writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, get_args

import orjson
from sqlalchemy import ARRAY, ColumnElement, Text, any_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import ipt_course, ipt_measure, ipt_session, search_reference
from ipt_core.fhir.store import ResourceStore
from ipt_core.ipt.codes import PHQ9_TOTAL, Phq9Status
from ipt_core.ipt.projections._linking import CourseWindow

__all__ = [
    "any_course",
    "course_encounters",
    "course_ids_of_patients",
    "course_row",
    "course_windows",
    "course_windows_of",
    "courses_based_on",
    "courses_referencing",
    "delete_course",
    "delete_courses",
    "delete_measure",
    "delete_measures",
    "delete_session",
    "delete_sessions",
    "encounters_of_appointment",
    "maintenance_course_ids",
    "maintenance_courses_of",
    "measure_patient",
    "measure_patients",
    "patients_with_courses",
    "phq9_totals",
    "read_resource",
    "read_resources",
    "session_row",
    "session_rows",
    "symptom_goal_ids",
    "upsert",
    "upsert_many",
]


async def read_resource(
    conn: AsyncConnection, resource_type: str, id_: str
) -> dict[str, Any] | None:
    """The current content of a resource, or None when it is unknown or deleted."""
    found = await read_resources(conn, resource_type, [id_])
    return found.get(id_)


async def read_resources(
    conn: AsyncConnection, resource_type: str, ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The current content of the resources of one type that exist, by id.

    Read through the resource store, the `resource` table's one owner (one statement).
    """
    keys = [(resource_type, id_) for id_ in sorted(set(ids))]
    found = await ResourceStore(conn).read_many(keys)
    return {
        id_: orjson.loads(row.content)
        for (_, id_), row in found.items()
        if not row.deleted and row.content
    }


async def symptom_goal_ids(conn: AsyncConnection, course_ids: Iterable[str]) -> dict[str, str]:
    """The symptom Goal's id of each of `course_ids` that has one."""
    rows = await conn.execute(
        select(ipt_course.c.id, ipt_course.c.symptom_goal_id).where(
            ipt_course.c.id.in_(sorted(set(course_ids))),
            ipt_course.c.symptom_goal_id.is_not(None),
        )
    )
    return {row.id: row.symptom_goal_id for row in rows}


async def upsert(conn: AsyncConnection, table_name: str, row: dict[str, Any]) -> None:
    """Insert a projection row, or replace the one with the same primary key."""
    await upsert_many(conn, table_name, [row])


async def upsert_many(
    conn: AsyncConnection, table_name: str, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert or replace projection rows of one table (each key at most once), one statement.

    The statement of each (table, columns) is built once: building an `ON CONFLICT` clause
    per call was a tenth of a transaction's CPU (bench/PROFILE.md, write path).
    """
    if not rows:
        return
    statement = _upsert_statement(table_name, tuple(rows[0]))
    await conn.execute(statement, rows[0] if len(rows) == 1 else list(rows))


@cache
def _upsert_statement(table_name: str, names: tuple[str, ...]) -> Insert:
    table = _TABLES[table_name]
    keys = [column.name for column in table.primary_key.columns]
    statement = insert(table)
    changes = {name: statement.excluded[name] for name in names if name not in keys}
    return statement.on_conflict_do_update(index_elements=keys, set_=changes)


async def course_row(conn: AsyncConnection, course_id: str) -> Any:
    """The `ipt_course` row of a course, or None."""
    query = select(ipt_course).where(ipt_course.c.id == course_id)
    return (await conn.execute(query)).first()


async def any_course(conn: AsyncConnection) -> bool:
    """Whether the database holds any IPT course."""
    return bool(await conn.scalar(select(select(ipt_course.c.id).exists())))


async def delete_course(conn: AsyncConnection, course_id: str) -> None:
    """Remove a course's row."""
    await conn.execute(delete(ipt_course).where(ipt_course.c.id == course_id))


async def courses_based_on(
    conn: AsyncConnection, course_ids: Sequence[str]
) -> dict[str, str | None]:
    """The courses of `course_ids` that have a row, each with the course it is `basedOn`."""
    rows = await conn.execute(_BASED_ON, {"ids": list(course_ids)})
    return {row.id: row.based_on for row in rows}


async def delete_courses(conn: AsyncConnection, course_ids: Sequence[str]) -> None:
    """Remove the rows of `course_ids`."""
    if course_ids:
        await conn.execute(_DELETE_COURSES, {"ids": list(course_ids)})


async def maintenance_courses_of(
    conn: AsyncConnection, course_ids: Sequence[str]
) -> dict[str, set[str]]:
    """The maintenance courses `basedOn` each of `course_ids` (only those that have some)."""
    found: dict[str, set[str]] = {}
    for row in await conn.execute(_FOLLOWERS, {"ids": list(course_ids)}):
        found.setdefault(row.based_on, set()).add(row.id)
    return found


async def course_windows(conn: AsyncConnection, patient_id: str) -> list[CourseWindow]:
    """Every IPT course of a patient, as the linking rules see it."""
    rows = await conn.execute(
        select(
            ipt_course.c.id, ipt_course.c.status, ipt_course.c.period_start, ipt_course.c.period_end
        ).where(ipt_course.c.patient_id == patient_id)
    )
    return [CourseWindow(r.id, r.status, r.period_start, r.period_end) for r in rows]


async def course_windows_of(
    conn: AsyncConnection, patient_ids: Iterable[str]
) -> dict[str, list[CourseWindow]]:
    """Every IPT course of each of `patient_ids` (those with none are missing), one statement."""
    wanted = sorted(set(patient_ids))
    if not wanted:
        return {}
    rows = await conn.execute(_WINDOWS, {"ids": wanted})
    found: dict[str, list[CourseWindow]] = {}
    for r in rows:
        found.setdefault(r.patient_id, []).append(
            CourseWindow(r.id, r.status, r.period_start, r.period_end)
        )
    return found


async def course_ids_of_patients(conn: AsyncConnection, patient_ids: Iterable[str]) -> set[str]:
    """The ids of every IPT course of the patients."""
    return await _course_ids_where(conn, ipt_course.c.patient_id, patient_ids)


async def maintenance_course_ids(conn: AsyncConnection, course_ids: Iterable[str]) -> set[str]:
    """The ids of the courses `basedOn` any of `course_ids` (maintenance courses)."""
    return await _course_ids_where(conn, ipt_course.c.based_on, course_ids)


async def patients_with_courses(conn: AsyncConnection, statuses: Iterable[str]) -> list[str]:
    """The patients with an IPT course in one of `statuses`, in id order."""
    c = ipt_course
    query = select(c.c.patient_id).where(c.c.status.in_(list(statuses))).distinct()
    return [str(row.patient_id) for row in await conn.execute(query.order_by(c.c.patient_id))]


async def _course_ids_where(
    conn: AsyncConnection, column: ColumnElement[Any], values: Iterable[str]
) -> set[str]:
    wanted = sorted(set(values))
    if not wanted:
        return set()
    rows = await conn.execute(select(ipt_course.c.id).where(column == any_(_IDS)), {"ids": wanted})
    return {row.id for row in rows}


async def courses_referencing(
    conn: AsyncConnection, param: str, target_type: str, target_id: str
) -> list[str]:
    """The IPT courses whose CarePlan search parameter `param` points at the target.

    Reads the store's own search index (written with the CarePlan), e.g. `condition` for
    `CarePlan.addresses` and `goal` for `CarePlan.goal`.
    """
    r = search_reference
    rows = await conn.execute(
        select(ipt_course.c.id)
        .join(r, r.c.resource_id == ipt_course.c.id)
        .where(
            r.c.resource_type == "CarePlan",
            r.c.param == param,
            r.c.target_type == target_type,
            r.c.target_id == target_id,
        )
        .distinct()
    )
    return sorted(row.id for row in rows)


async def session_row(conn: AsyncConnection, resource_type: str, resource_id: str) -> Any:
    """The `ipt_session` row of an Encounter or Appointment, or None."""
    s = ipt_session
    query = select(s).where(s.c.resource_type == resource_type, s.c.resource_id == resource_id)
    return (await conn.execute(query)).first()


async def session_rows(
    conn: AsyncConnection, resource_type: str, resource_ids: Iterable[str]
) -> dict[str, Any]:
    """The `ipt_session` rows of Encounters (or Appointments) that have one, by id."""
    wanted = sorted(set(resource_ids))
    if not wanted:
        return {}
    rows = await conn.execute(_SESSIONS, {"type": resource_type, "ids": wanted})
    return {row.resource_id: row for row in rows}


async def delete_sessions(
    conn: AsyncConnection, resource_type: str, resource_ids: Sequence[str]
) -> None:
    """Remove the session rows of `resource_ids`."""
    if resource_ids:
        await conn.execute(_DELETE_SESSIONS, {"type": resource_type, "ids": list(resource_ids)})


async def delete_session(conn: AsyncConnection, resource_type: str, resource_id: str) -> None:
    """Remove a session's row."""
    s = ipt_session
    await conn.execute(
        delete(s).where(s.c.resource_type == resource_type, s.c.resource_id == resource_id)
    )


async def encounters_of_appointment(conn: AsyncConnection, appointment_id: str) -> Sequence[Any]:
    """The session rows of Encounters that reference an Appointment (the same session)."""
    s = ipt_session
    query = select(s).where(s.c.resource_type == "Encounter", s.c.appointment_id == appointment_id)
    return list(await conn.execute(query))


async def course_encounters(conn: AsyncConnection, course_id: str) -> Sequence[Any]:
    """The Encounter session rows (start, status, minutes) of a course, in time order."""
    s = ipt_session
    query = (
        select(s.c.start, s.c.status, s.c.minutes)
        .where(s.c.course_id == course_id, s.c.resource_type == "Encounter")
        .order_by(s.c.start.asc().nulls_last())
    )
    return list(await conn.execute(query))


async def phq9_totals(
    conn: AsyncConnection, patient_id: str, start: datetime | None, end: datetime | None
) -> Sequence[Any]:
    """A patient's scored PHQ-9 totals (effective, value) within a period, in time order.

    An open end of the period is unbounded (docs/fhir-mapping.md#phq-9-of-a-course: measures
    link to courses by patient and time only).
    """
    m = ipt_measure
    query = (
        select(m.c.effective, m.c.value)
        .where(
            m.c.patient_id == patient_id,
            m.c.code == PHQ9_TOTAL,
            m.c.status.in_(get_args(Phq9Status)),
        )
        .order_by(m.c.effective)
    )
    if start is not None:
        query = query.where(m.c.effective >= start)
    if end is not None:
        query = query.where(m.c.effective <= end)
    return list(await conn.execute(query))


async def measure_patient(conn: AsyncConnection, observation_id: str) -> str | None:
    """The patient of an Observation's measure row, or None when it has none."""
    query = select(ipt_measure.c.patient_id).where(ipt_measure.c.observation_id == observation_id)
    return (await conn.execute(query)).scalar()


async def measure_patients(conn: AsyncConnection, observation_ids: Iterable[str]) -> dict[str, str]:
    """The patient of each Observation's measure row, for those that have one."""
    rows = await conn.execute(_MEASURE_PATIENTS, {"ids": sorted(set(observation_ids))})
    return {row.observation_id: row.patient_id for row in rows}


async def delete_measures(conn: AsyncConnection, observation_ids: Sequence[str]) -> None:
    """Remove the measure rows of `observation_ids`."""
    if observation_ids:
        await conn.execute(_DELETE_MEASURES, {"ids": list(observation_ids)})


async def delete_measure(conn: AsyncConnection, observation_id: str) -> None:
    """Remove an Observation's measure row."""
    await conn.execute(delete(ipt_measure).where(ipt_measure.c.observation_id == observation_id))


_TABLES = {table.name: table for table in (ipt_course, ipt_session, ipt_measure)}

# The set-based statements of the batch listener, built once: building `IN (…)` lists per
# call (a bound parameter per value) was a third of `project_measures` (py-spy, bulk load).
_IDS = bindparam("ids", type_=ARRAY(Text))
_S, _C, _M = ipt_session.c, ipt_course.c, ipt_measure.c
_SESSIONS = select(ipt_session).where(
    _S.resource_type == bindparam("type"), _S.resource_id == any_(_IDS)
)
_DELETE_SESSIONS = delete(ipt_session).where(
    _S.resource_type == bindparam("type"), _S.resource_id == any_(_IDS)
)
_WINDOWS = select(_C.id, _C.patient_id, _C.status, _C.period_start, _C.period_end).where(
    _C.patient_id == any_(_IDS)
)
_BASED_ON = select(_C.id, _C.based_on).where(_C.id == any_(_IDS))
_DELETE_COURSES = delete(ipt_course).where(_C.id == any_(_IDS))
_FOLLOWERS = select(_C.id, _C.based_on).where(_C.based_on == any_(_IDS))
_MEASURE_PATIENTS = select(_M.observation_id, _M.patient_id).where(_M.observation_id == any_(_IDS))
_DELETE_MEASURES = delete(ipt_measure).where(_M.observation_id == any_(_IDS))
