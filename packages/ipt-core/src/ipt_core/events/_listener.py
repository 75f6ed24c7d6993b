"""`OutboxListener`: one `fhir.resource.changed` event per FHIR write, in the write's transaction.

The event names the resource and its new version, never its content: subscribers that need
the content read it from the FHIR API with their own authorization, and no patient data leaves
through the event channels. Which partition (ordered sequence) an event joins is a rule of the
domain, injected by the composition root (`ipt_core.composition`); by default each resource is
its own partition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.parts import RowsPart
from ipt_core.events._envelope import cloud_event
from ipt_core.events._outbox import append_sequenced, sequenced_part
from ipt_core.events._types import RESOURCE_CHANGED
from ipt_core.fhir.model import Change
from ipt_core.telemetry import current_traceparent

__all__ = ["OutboxListener", "PartitionRule", "resource_partition_key"]

PartitionRule = Callable[[Change], str]
"""Names the partition key (ordered sequence) of a write's event."""


def resource_partition_key(change: Change) -> str:
    """Every resource its own partition: `Type/id`."""
    return f"{change.stored.resource_type}/{change.stored.id}"


class OutboxListener:
    """Appends a `fhir.resource.changed` event for every create, update and delete."""

    def __init__(self, partition_key: PartitionRule = resource_partition_key) -> None:
        """Partition events with `partition_key` (by default, one partition per resource)."""
        self.partition_key = partition_key

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """Append the event of `change` to the outbox (committed or rolled back with it)."""
        await self.resources_written(conn, [change])

    async def resources_written(self, conn: AsyncConnection, changes: Sequence[Change]) -> None:
        """Append the events of `changes`, in order, with one statement (the batch form)."""
        await append_sequenced(conn, self._events(changes), changes[0].stored.last_updated)

    def rows_part(self, changes: Sequence[Change]) -> RowsPart:
        """The events of `changes` as rows of the write's own statement (`ipt_core.db.parts`)."""
        return sequenced_part(self._events(changes), changes[0].stored.last_updated)

    def _events(self, changes: Sequence[Change]) -> list[tuple[str, dict[str, Any]]]:
        traceparent = current_traceparent()
        events = []
        for change in changes:
            stored = change.stored
            event = cloud_event(
                type_=RESOURCE_CHANGED,
                subject=f"{stored.resource_type}/{stored.id}",
                partition_key=self.partition_key(change),
                sequence=0,  # numbered in the write's transaction, by the outbox's SQL
                time=stored.last_updated,
                data={
                    "type": stored.resource_type,
                    "id": stored.id,
                    "versionId": str(stored.version_id),
                    "action": change.action,
                },
                traceparent=traceparent,
            )
            events.append((stored.resource_type, event))
        return events
