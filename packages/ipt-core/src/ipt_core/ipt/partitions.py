"""The outbox partitioning rule of IPT: a course's events share one ordered partition.

A write to an IPT course's CarePlan goes into the partition of the course (its id), so its
`fhir.resource.changed` events and the status engine's `ipt.course.*` events form one sequence
(docs/architecture.md#events-outbox-and-relay). Every other resource is its own partition,
`Type/id`. The events layer knows nothing of IPT: the composition root injects this rule.
"""

from __future__ import annotations

from typing import Any

import orjson

from ipt_core.events import resource_partition_key
from ipt_core.fhir.model import Change
from ipt_core.ipt._careplan_facts import is_ipt_course

__all__ = ["course_partition_key"]


def course_partition_key(change: Change) -> str:
    """The course id for an IPT CarePlan (ordered with its status events), else `Type/id`."""
    stored = change.stored
    if stored.resource_type == "CarePlan" and is_ipt_course(_careplan(change)):
        return stored.id
    return resource_partition_key(change)


def _careplan(change: Change) -> dict[str, Any]:
    # A deletion carries no content: the deleted version's category decides.
    if change.resource is not None:
        return change.resource
    if change.previous is not None and change.previous.content:
        content: dict[str, Any] = orjson.loads(change.previous.content)
        return content
    return {}
