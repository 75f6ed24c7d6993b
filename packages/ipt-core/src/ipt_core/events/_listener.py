"""`OutboxListener`: one `fhir.resource.changed` event per FHIR write, in the write's transaction.

The event names the resource and its new version, never its content: subscribers that need
the content read it from the FHIR API with their own authorization, and no patient data leaves
through the event channels.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.events._envelope import cloud_event
from ipt_core.events._outbox import append_events, next_sequence
from ipt_core.events._types import RESOURCE_CHANGED
from ipt_core.fhir.model import Change
from ipt_core.ipt import is_ipt_course
from ipt_core.telemetry import current_traceparent

__all__ = ["OutboxListener", "partition_key"]


class OutboxListener:
    """Appends a `fhir.resource.changed` event for every create, update and delete."""

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """Append the event of `change` to the outbox (committed or rolled back with it)."""
        stored = change.stored
        key = partition_key(change)
        event = cloud_event(
            type_=RESOURCE_CHANGED,
            subject=f"{stored.resource_type}/{stored.id}",
            partition_key=key,
            sequence=await next_sequence(conn, key),
            time=stored.last_updated,
            data={
                "type": stored.resource_type,
                "id": stored.id,
                "versionId": str(stored.version_id),
                "action": change.action,
            },
            traceparent=current_traceparent(),
        )
        await append_events(conn, stored.resource_type, [event], stored.last_updated)


def partition_key(change: Change) -> str:
    """The course id for an IPT CarePlan (ordered with its status events), else `Type/id`."""
    stored = change.stored
    if stored.resource_type == "CarePlan" and is_ipt_course(_careplan(change)):
        return stored.id
    return f"{stored.resource_type}/{stored.id}"


def _careplan(change: Change) -> dict[str, Any]:
    # A deletion carries no content: the deleted version's category decides.
    if change.resource is not None:
        return change.resource
    if change.previous is not None and change.previous.content:
        content: dict[str, Any] = orjson.loads(change.previous.content)
        return content
    return {}
