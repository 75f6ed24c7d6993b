"""`IptProjections`: the store's write listener that keeps IPT rows and the recompute queue.

Runs inside every resource write's transaction (docs/architecture.md#write-path), so the rows
and recompute requests commit or roll back with the resource. For each write it:

1. ignores the status engine's own write-backs (phase extension, goal achievement): their
   cause is `WriteCause.STATUS_WRITEBACK`, and recomputing on them would loop forever;
2. checks the IPT rules (issue 4, item 2); a violation aborts the write with a 422;
3. updates the projection rows the resource feeds;
4. asks for a recompute of every course whose facts changed, due at the write's time.

The batch form (`resources_written`, a set-based write's changes) does the same with fewer
statements: the rules read every related CarePlan at once; the changes are put in an order
with long runs of one type that keeps each patient's in write order (`_schedule`); a run of
CarePlan, Encounter or Observation writes is projected set-based (`project_courses`,
`project_encounters`, `project_measures`), the others one by one in order; and the recompute
requests of one due time are asked for with one statement (a course asked for by several
changes is bumped once, not once per change: the queue only compares generations,
docs/architecture.md#status-engine).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.fhir.errors import BusinessRuleViolated, Issue
from ipt_core.fhir.listeners import ChangeRefused
from ipt_core.fhir.model import Change, WriteCause
from ipt_core.ipt._rules import RuleViolation, related_course_id, rule_violations
from ipt_core.ipt.fhir_json import stored_json
from ipt_core.ipt.projections import repository as repo
from ipt_core.ipt.projections._courses import project_course, project_courses, refresh_courses
from ipt_core.ipt.projections._measures import project_measure, project_measures
from ipt_core.ipt.projections._schedule import schedule
from ipt_core.ipt.projections._session_batch import project_encounters
from ipt_core.ipt.projections._sessions import project_session
from ipt_core.queue import request_recompute

__all__ = ["IptProjections", "check_ipt_rules"]

Resource = dict[str, Any]
Projection = Callable[[AsyncConnection, str, Resource | None, Resource | None], Awaitable[set[str]]]
RunProjection = Callable[[AsyncConnection, Sequence[Change]], Awaitable[list[set[str]]]]
_RULED: Final = frozenset({"CarePlan", "Encounter", "Appointment", "Observation"})


class IptProjections:
    """Keeps ipt_course, ipt_session and ipt_measure in step with the FHIR resources."""

    def concerns(self, change: Change) -> bool:
        """A write of a projected type, other than the status engine's own write-backs."""
        return (
            change.stored.resource_type in _PROJECTIONS
            and change.cause is not WriteCause.STATUS_WRITEBACK
        )

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """Check the IPT rules, update the projections and queue recomputes for `change`.

        Raises:
            BusinessRuleViolated: when the resource breaks an IPT rule (the write aborts).
        """
        try:
            await self.resources_written(conn, [change])
        except ChangeRefused as refused:
            raise refused.error from None

    async def resources_written(self, conn: AsyncConnection, changes: Sequence[Change]) -> None:
        """What `resource_written` does for each of `changes`, in order, set-based.

        Raises:
            ChangeRefused: naming the first change that breaks an IPT rule (the write aborts).
        """
        projected = [(index, c) for index, c in enumerate(changes) if self.concerns(c)]
        await _check_rules(conn, projected)
        asked: dict[datetime, set[str]] = {}
        for run in _runs(schedule([change for _, change in projected])):
            affected = await _project_run(conn, run)
            for change, courses in zip(run, affected, strict=True):
                asked.setdefault(change.stored.last_updated, set()).update(courses)
        for due_at, courses in asked.items():
            await request_recompute(conn, courses, due_at)


async def _check_rules(conn: AsyncConnection, changes: list[tuple[int, Change]]) -> None:
    """`check_ipt_rules` of every change, the related CarePlans read with one statement."""
    ruled = [
        (index, change.resource)
        for index, change in changes
        if change.resource is not None and change.resource.get("resourceType") in _RULED
    ]
    related = {index: related_course_id(resource) for index, resource in ruled}
    wanted = {id_ for id_ in related.values() if id_}
    careplans = await repo.read_resources(conn, "CarePlan", wanted) if wanted else {}
    for index, resource in ruled:
        related_id = related[index]
        violations = rule_violations(resource, careplans.get(related_id) if related_id else None)
        if violations:
            raise ChangeRefused(index, _refusal(violations))


def _runs(changes: list[Change]) -> list[list[Change]]:
    """Consecutive changes of one type, each resource at most once per run."""
    runs: list[list[Change]] = []
    for change in changes:
        run = runs[-1] if runs else None
        if (
            run is None
            or run[0].stored.resource_type != change.stored.resource_type
            or any(c.stored.id == change.stored.id for c in run)
        ):
            runs.append([change])
        else:
            run.append(change)
    return runs


async def _project_run(conn: AsyncConnection, run: list[Change]) -> list[set[str]]:
    """The courses each change of `run` affects, after projecting them (set-based if it can)."""
    set_based = _SET_BASED.get(run[0].stored.resource_type)
    if set_based is not None and len(run) > 1:
        return await set_based(conn, run)
    projection = _PROJECTIONS[run[0].stored.resource_type]
    return [await projection(conn, c.stored.id, c.resource, stored_json(c.previous)) for c in run]


async def check_ipt_rules(conn: AsyncConnection, resource: Resource) -> None:
    """Refuse a resource that breaks an IPT rule, naming each rule and element.

    Raises:
        BusinessRuleViolated: with one issue per violation.
    """
    if resource.get("resourceType") not in _RULED:
        return
    related_id = related_course_id(resource)
    related = await repo.read_resource(conn, "CarePlan", related_id) if related_id else None
    violations = rule_violations(resource, related)
    if violations:
        raise _refusal(violations)


def _refusal(violations: list[RuleViolation]) -> BusinessRuleViolated:
    issues = tuple(map(_issue, violations))
    return BusinessRuleViolated(issues[0].diagnostics, issues=issues)


def _issue(violation: RuleViolation) -> Issue:
    return Issue(
        "business-rule", f"[{violation.rule}] {violation.message}", (violation.expression,)
    )


async def _course(
    conn: AsyncConnection, id_: str, current: Resource | None, previous: Resource | None
) -> set[str]:
    return await project_course(conn, id_, current, previous)


async def _measure(
    conn: AsyncConnection, id_: str, current: Resource | None, previous: Resource | None
) -> set[str]:
    return await project_measure(conn, id_, current)


def _session(resource_type: str) -> Projection:
    async def project(
        conn: AsyncConnection, id_: str, current: Resource | None, previous: Resource | None
    ) -> set[str]:
        return await project_session(conn, resource_type, id_, current, rewritten=True)

    return project


def _referencing_courses(param: str, resource_type: str) -> Projection:
    """A Condition or Goal write: re-read the courses whose CarePlan references it."""

    async def project(
        conn: AsyncConnection, id_: str, current: Resource | None, previous: Resource | None
    ) -> set[str]:
        courses = await repo.courses_referencing(conn, param, resource_type, id_)
        return await refresh_courses(conn, courses)

    return project


_PROJECTIONS: Final[dict[str, Projection]] = {
    "CarePlan": _course,
    "Encounter": _session("Encounter"),
    "Appointment": _session("Appointment"),
    "Observation": _measure,
    "Condition": _referencing_courses("condition", "Condition"),
    "Goal": _referencing_courses("goal", "Goal"),
}


async def _courses(conn: AsyncConnection, run: Sequence[Change]) -> list[set[str]]:
    return await project_courses(
        conn, [(c.stored.id, c.resource, stored_json(c.previous)) for c in run]
    )


async def _encounters(conn: AsyncConnection, run: Sequence[Change]) -> list[set[str]]:
    return await project_encounters(conn, [(c.stored.id, c.resource) for c in run])


async def _measures(conn: AsyncConnection, run: Sequence[Change]) -> list[set[str]]:
    return await project_measures(conn, [(c.stored.id, c.resource) for c in run])


_SET_BASED: Final[dict[str, RunProjection]] = {
    "CarePlan": _courses,
    "Encounter": _encounters,
    "Observation": _measures,
}
