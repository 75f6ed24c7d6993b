"""`EhrPushListener`: queues push work in the same transaction as the write that causes it.

What is pushed (docs/ehr-sync.md): PHQ-9 Observations, the Encounters of IPT sessions, IPT
course CarePlans and their Goals, and a course summary when a course completes. A resource
pulled from an EHR is never queued for that EHR (it would echo back).

The batch form asks once per batch whether any endpoint is configured (a statement per
written resource before, for nothing when none is, as in most deployments).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.ehr.identifiers import pulled_from
from ipt_core.ehr.repository import any_configured_endpoint, enqueue_push
from ipt_core.ehr.summary import SUMMARY_KIND
from ipt_core.fhir.model import Change
from ipt_core.ipt import is_ipt_course
from ipt_core.ipt.codes import LOINC, PHQ9_ITEM9, PHQ9_TOTAL
from ipt_core.ipt.projections import courses_referencing, session_row

__all__ = ["RESOURCE_KIND", "EhrPushListener", "course_completed", "is_phq9"]

RESOURCE_KIND: Final = "resource"
_PUSHABLE: Final = frozenset({"Observation", "Encounter", "CarePlan", "Goal"})


class EhrPushListener:
    """Enqueues `ehr_push_item` rows for the configured EHR endpoints."""

    def concerns(self, change: Change) -> bool:
        """A written (not deleted) resource of a type that is pushed."""
        return change.resource is not None and change.stored.resource_type in _PUSHABLE

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """Queue `change` for every endpoint that takes it (nothing when none is configured)."""
        await self.resources_written(conn, [change])

    async def resources_written(self, conn: AsyncConnection, changes: Sequence[Change]) -> None:
        """Queue each of `changes`, in order, as `resource_written` does."""
        pushable = [change for change in changes if self.concerns(change)]
        if not pushable or not await any_configured_endpoint(conn):
            return
        for change in pushable:
            await _queue(conn, change)


async def _queue(conn: AsyncConnection, change: Change) -> None:
    resource = change.resource
    stored = change.stored
    if resource is None or not await _wanted(conn, stored.resource_type, stored.id, resource):
        return
    exclude = sorted(pulled_from(resource))
    await enqueue_push(
        conn,
        kind=RESOURCE_KIND,
        resource_type=stored.resource_type,
        resource_id=stored.id,
        push_type=stored.resource_type,
        now=stored.last_updated,
        exclude=exclude,
    )
    if stored.resource_type == "CarePlan" and course_completed(resource):
        await enqueue_push(
            conn,
            kind=SUMMARY_KIND,
            resource_type="CarePlan",
            resource_id=stored.id,
            push_type="DocumentReference",
            now=stored.last_updated,
            exclude=exclude,
        )


def is_phq9(resource: dict[str, Any]) -> bool:
    """A PHQ-9 total or item-9 Observation."""
    codings = (resource.get("code") or {}).get("coding") or []
    return any(
        c.get("system") == LOINC and c.get("code") in {PHQ9_TOTAL, PHQ9_ITEM9} for c in codings
    )


def course_completed(careplan: dict[str, Any]) -> bool:
    """An IPT course whose CarePlan is completed."""
    return careplan.get("status") == "completed" and is_ipt_course(careplan)


async def _wanted(
    conn: AsyncConnection, resource_type: str, id_: str, resource: dict[str, Any]
) -> bool:
    if resource_type == "Observation":
        return is_phq9(resource)
    if resource_type == "CarePlan":
        return is_ipt_course(resource)
    if resource_type == "Encounter":
        session = await session_row(conn, "Encounter", id_)
        return session is not None and session.course_id is not None
    return bool(await courses_referencing(conn, "goal", "Goal", id_))
