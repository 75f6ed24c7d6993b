"""Load the status function's facts for a batch of courses with set-based queries.

Reads the IPT projections (ipt_course, ipt_session, ipt_measure) and each course's stored
CarePlan, in a fixed number of queries per batch whatever its size (these reads are the
status engine's, the projections' writes are `ipt/projections/`). The queries are
`FixedStatement`s: built with Core once, and on a connection in autocommit (the worker's
loads, the API's reads) run on the driver, whose records the facts read directly. A batch of
500 courses reads thousands of rows, and SQLAlchemy's result rows were a tenth of a
recompute's CPU (bench/PROFILE.md, "Thirteenth round").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

import orjson
from sqlalchemy import ARRAY, Text, any_, bindparam, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.fixed import FixedStatement
from ipt_core.db.schema import ipt_course, ipt_measure, ipt_session, resource
from ipt_core.ipt.codes import ACTIVITY_SYSTEM, PHQ9_ITEM9, PHQ9_TOTAL, SOCIAL_PRACTICE
from ipt_core.status._calendar import Cadence, cadence_from_timing
from ipt_core.status._facts import CourseFacts, Phq9Fact, SessionFact
from ipt_core.status._sessions import resolve_session

__all__ = ["CourseRow", "UnreadableCourse", "load_facts"]

_COUNTED_PHQ9 = ("final", "amended", "corrected")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CourseRow = Any  # a row of ipt_course joined with its CarePlan content, read by column name


@dataclass(frozen=True)
class UnreadableCourse:
    """A course whose stored data no status rule can read (e.g. a corrupt projection row)."""

    error: str  # the error type's name: never the message, which could carry patient data


async def load_facts(
    conn: AsyncConnection, course_ids: Sequence[str]
) -> dict[str, CourseFacts | UnreadableCourse]:
    """Return the facts of each course that is (still) an IPT course, by course id.

    One unreadable course is reported as such and does not stop the others.
    """
    courses = await _courses(conn, course_ids)
    related_ids = {c["based_on"] for c in courses.values() if c["based_on"]}
    maintenance = await _maintenance_of(conn, list(courses))
    related_ids |= {m["id"] for rows in maintenance.values() for m in rows}
    courses |= await _courses(conn, list(related_ids - set(courses)))
    sessions = await _sessions(conn, list(courses))
    phq9 = await _phq9(conn, {c["patient_id"] for c in courses.values()})
    facts: dict[str, CourseFacts | UnreadableCourse] = {}
    for course_id in course_ids:
        row = courses.get(course_id)
        if row is None or row["status"] == "entered-in-error":
            continue
        try:
            facts[course_id] = _facts(row, courses, maintenance, sessions, phq9)
        except (ValueError, TypeError, KeyError) as error:
            facts[course_id] = UnreadableCourse(type(error).__name__)
    return facts


def _facts(
    row: CourseRow,
    courses: dict[str, CourseRow],
    maintenance: dict[str, list[CourseRow]],
    sessions: dict[str, tuple[SessionFact, ...]],
    phq9: dict[str, tuple[Phq9Fact, ...]],
) -> CourseFacts:
    related: CourseFacts | None = None
    has_maintenance = False
    if row["course_type"] == "maintenance" and row["based_on"] in courses:
        acute = courses[row["based_on"]]
        if acute["status"] != "entered-in-error" and acute["course_type"] == "acute":
            related = _own_facts(acute, sessions, phq9)
    elif row["course_type"] == "acute":
        followers = [m for m in maintenance.get(row["id"], []) if m["status"] != "entered-in-error"]
        has_maintenance = bool(followers)
        active = [m for m in followers if m["status"] in ("active", "unknown")]
        if active:
            latest = max(active, key=lambda m: (m["period_start"] or _EPOCH, m["id"]))
            related = _own_facts(courses[latest["id"]], sessions, phq9)
    return _own_facts(row, sessions, phq9, related=related, has_maintenance=has_maintenance)


def _own_facts(
    row: CourseRow,
    sessions: dict[str, tuple[SessionFact, ...]],
    phq9: dict[str, tuple[Phq9Fact, ...]],
    *,
    related: CourseFacts | None = None,
    has_maintenance: bool = False,
) -> CourseFacts:
    careplan = orjson.loads(row["content"])
    timing = row["timing"] or {}
    count = timing.get("count")
    return CourseFacts(
        status=row["status"],
        course_type=row["course_type"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        planned_count=count if isinstance(count, int) else None,
        cadence=_cadence(timing.get("period"), timing.get("periodUnit"), timing.get("frequency")),
        addresses_recurrent_depression=row["recurrent"],
        sessions=sessions.get(row["id"], ()),
        phq9=phq9.get(row["patient_id"], ()),
        practice_statuses=tuple(_practice_statuses(careplan)),
        related=related,
        has_maintenance_course=has_maintenance,
    )


def _cadence(period: Any, unit: Any, frequency: Any) -> Cadence | None:
    try:
        return _cached_cadence(period, unit, frequency)
    except TypeError:  # an unhashable JSON value: let the function itself judge it
        return _cadence_of(period, unit, frequency)


def _cadence_of(period: Any, unit: Any, frequency: Any) -> Cadence | None:
    exact = Decimal(str(period)) if period is not None else None
    return cadence_from_timing(exact, unit, frequency)


# Courses share a handful of timings: a cadence (frozen) is worked out once per timing, not
# once per course. `typed`: 1, 1.0 and True are different JSON values.
_cached_cadence = lru_cache(maxsize=256, typed=True)(_cadence_of)


def _practice_statuses(careplan: dict[str, Any]) -> Iterable[str]:
    for activity in careplan.get("activity", []):
        detail = activity.get("detail", {}) if isinstance(activity, dict) else {}
        codings = detail.get("code", {}).get("coding", [])
        if any(
            c.get("system") == ACTIVITY_SYSTEM and c.get("code") == SOCIAL_PRACTICE for c in codings
        ):
            yield str(detail.get("status", "not-started"))


_C = ipt_course
_S = ipt_session
_M = ipt_measure
_IDS = bindparam("ids", type_=ARRAY(Text()))
# Only the columns the facts read (not problem_areas, whose array every row would decode).
_COURSE_COLUMNS = (
    _C.c.id,
    _C.c.patient_id,
    _C.c.status,
    _C.c.course_type,
    _C.c.timing,
    _C.c.period_start,
    _C.c.period_end,
    _C.c.based_on,
    _C.c.recurrent,
)
_COURSES: Final = FixedStatement(
    select(*_COURSE_COLUMNS, resource.c.content)
    .join(
        resource,
        (resource.c.resource_type == "CarePlan") & (resource.c.id == _C.c.id) & ~resource.c.deleted,
    )
    .where(_C.c.id == any_(_IDS))
)
_MAINTENANCE: Final = FixedStatement(
    select(_C.c.id, _C.c.based_on, _C.c.status, _C.c.period_start).where(
        _C.c.based_on == any_(_IDS), _C.c.course_type == "maintenance"
    )
)
# Only the columns the facts read: each column of every row is decoded, and a batch of 500
# courses reads thousands of rows. (type, id) is the key, so the UNION dedups as before.
_SESSION_COLUMNS = (
    _S.c.resource_type,
    _S.c.resource_id,
    _S.c.course_id,
    _S.c.appointment_id,
    _S.c.status,
    _S.c.start,
)


def _sessions_statement() -> Any:
    """The linked rows, the Appointments their Encounters reference, the Encounters of their
    Appointments: a session is an Encounter merged with its Appointment."""
    s = _S
    linked = select(*_SESSION_COLUMNS).where(s.c.course_id == any_(_IDS)).cte("linked")
    their_appointments = select(*_SESSION_COLUMNS).join(
        linked, (s.c.resource_type == "Appointment") & (s.c.resource_id == linked.c.appointment_id)
    )
    their_encounters = select(*_SESSION_COLUMNS).join(
        linked,
        (linked.c.resource_type == "Appointment")
        & (s.c.resource_type == "Encounter")
        & (s.c.appointment_id == linked.c.resource_id),
    )
    return union(select(linked), their_appointments, their_encounters)


_SESSIONS: Final = FixedStatement(_sessions_statement())
_PHQ9: Final = FixedStatement(
    select(
        _M.c.observation_id,
        _M.c.patient_id,
        _M.c.code,
        _M.c.effective,
        _M.c.value,
        _M.c.item9,
        _M.c.members,
    ).where(
        _M.c.patient_id == any_(_IDS),
        _M.c.status == any_(bindparam("counted", list(_COUNTED_PHQ9), type_=ARRAY(Text()))),
        _M.c.code == any_(bindparam("codes", [PHQ9_TOTAL, PHQ9_ITEM9], type_=ARRAY(Text()))),
    )
)


async def _courses(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, CourseRow]:
    if not ids:
        return {}
    return {row["id"]: row for row in await _COURSES.execute(conn, {"ids": list(ids)})}


async def _maintenance_of(
    conn: AsyncConnection, acute_ids: Sequence[str]
) -> dict[str, list[CourseRow]]:
    if not acute_ids:
        return {}
    found: dict[str, list[CourseRow]] = defaultdict(list)
    for row in await _MAINTENANCE.execute(conn, {"ids": list(acute_ids)}):
        found[row["based_on"]].append(row)
    return found


async def _sessions(
    conn: AsyncConnection, course_ids: Sequence[str]
) -> dict[str, tuple[SessionFact, ...]]:
    """Sessions per course, an Encounter merged with the Appointment it references."""
    if not course_ids:
        return {}
    rows = await _SESSIONS.execute(conn, {"ids": list(course_ids)})
    return _session_facts([tuple(row.values()) for row in rows], set(course_ids))


def _session_facts(rows: list[Any], wanted: set[str]) -> dict[str, tuple[SessionFact, ...]]:
    """Rows are (type, id, course, appointment id, status, start) tuples."""
    appointments = {row[1]: row for row in rows if row[0] == "Appointment"}
    merged_appointments = {
        row[3]
        for row in rows
        if row[0] == "Encounter" and row[3] in appointments and row[4] != "entered-in-error"
    }
    found: dict[str, list[SessionFact]] = defaultdict(list)
    for row in rows:
        kind, resource_id, course, appointment_id, status, start = row
        if kind == "Encounter":
            appointment = appointments.get(appointment_id)
            if not course:
                course = appointment[2] if appointment is not None else None
            if course not in wanted:
                continue
            fact = resolve_session(
                appointment[1] if appointment is not None else resource_id,
                encounter_status=status,
                encounter_start=start,
                appointment_status=appointment[4] if appointment is not None else None,
                appointment_start=appointment[5] if appointment is not None else None,
            )
        elif kind == "Appointment":
            if resource_id in merged_appointments or course not in wanted:
                continue  # a merged one is decided together with its Encounter
            fact = resolve_session(resource_id, appointment_status=status, appointment_start=start)
        else:
            continue
        if fact is not None:
            found[course].append(fact)
    return {course: tuple(facts) for course, facts in found.items()}


async def _phq9(conn: AsyncConnection, patients: set[str]) -> dict[str, tuple[Phq9Fact, ...]]:
    """PHQ-9 totals per patient, each with its item 9: a component wins over a separate one."""
    if not patients:
        return {}
    # In the statement's column order, whether the driver's records or Core's mappings.
    rows = [tuple(row.values()) for row in await _PHQ9.execute(conn, {"ids": sorted(patients)})]
    items = [row for row in rows if row[2] == PHQ9_ITEM9]
    separate = {(patient, effective): value for _, patient, _, effective, value, _, _ in items}
    by_id = {observation: value for observation, _, _, _, value, _, _ in items}
    found: dict[str, list[Phq9Fact]] = defaultdict(list)
    for observation, patient, code, effective, value, item9, members in rows:
        if code != PHQ9_TOTAL:
            continue
        if item9 is None:
            answers = [by_id[m] for m in members or () if m in by_id]
            item9 = answers[0] if answers else separate.get((patient, effective))
        found[patient].append(Phq9Fact(observation, effective, value, item9))
    return {patient: tuple(facts) for patient, facts in found.items()}
