"""`IptProjections`: the store's write listener that keeps IPT rows and the recompute queue.

Runs inside every resource write's transaction (docs/architecture.md#write-path), so the rows
and recompute requests commit or roll back with the resource. For each write it:

1. ignores the status engine's own write-backs (phase extension, goal achievement): their
   cause is `WriteCause.STATUS_WRITEBACK`, and recomputing on them would loop forever;
2. checks the IPT rules (issue 4, item 2); a violation aborts the write with a 422;
3. updates the projection rows the resource feeds;
4. asks for a recompute of every course whose facts changed, due at the write's time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.fhir.errors import BusinessRuleViolated, Issue
from ipt_core.fhir.model import Change, StoredResource, WriteCause
from ipt_core.ipt._rules import RuleViolation, related_course_id, rule_violations
from ipt_core.ipt.projections import repository as repo
from ipt_core.ipt.projections._courses import project_course, refresh_courses
from ipt_core.ipt.projections._measures import project_measure
from ipt_core.ipt.projections._sessions import project_session
from ipt_core.queue import request_recompute

__all__ = ["IptProjections", "check_ipt_rules"]

Resource = dict[str, Any]
Projection = Callable[[AsyncConnection, str, Resource | None, Resource | None], Awaitable[set[str]]]
_RULED: Final = frozenset({"CarePlan", "Encounter", "Appointment", "Observation"})


class IptProjections:
    """Keeps ipt_course, ipt_session and ipt_measure in step with the FHIR resources."""

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """Check the IPT rules, update the projections and queue recomputes for `change`.

        Raises:
            BusinessRuleViolated: when the resource breaks an IPT rule (the write aborts).
        """
        projection = _PROJECTIONS.get(change.stored.resource_type)
        if projection is None or change.cause is WriteCause.STATUS_WRITEBACK:
            return
        previous = _content(change.previous)
        current = change.resource
        if current is not None:
            await check_ipt_rules(conn, current)
        affected = await projection(conn, change.stored.id, current, previous)
        await request_recompute(conn, affected, change.stored.last_updated)


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
        issues = tuple(map(_issue, violations))
        raise BusinessRuleViolated(issues[0].diagnostics, issues=issues)


def _issue(violation: RuleViolation) -> Issue:
    return Issue(
        "business-rule", f"[{violation.rule}] {violation.message}", (violation.expression,)
    )


def _content(stored: StoredResource | None) -> Resource | None:
    if stored is None or stored.deleted or stored.content is None:
        return None
    content: Resource = orjson.loads(stored.content)
    return content


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
