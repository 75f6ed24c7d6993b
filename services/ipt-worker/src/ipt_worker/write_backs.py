"""The status engine's write-backs: the CarePlan's phase extension and the symptom Goal's
`achievementStatus`, derived from the stored status (docs/fhir-mapping.md, "Derived values
written back").

Each write starts from the version the batch read (`if_match`); one whose resource changed
meanwhile is skipped, since that change re-queues the course anyway. The bodies are those
versions with one value of ours set, so they are `derived_from_stored`: written without the
fhir.resources model validation their versions passed when stored (docs/architecture.md,
"Status engine"; tests/unit/worker/test_write_back_bodies.py validates them in full).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ipt_core.fhir.model import StoredResource, VersionedWrite
from ipt_core.fhir.store import ResourceStore
from ipt_core.ipt import course_phase, goal_achievement, with_course_phase, with_goal_achievement

__all__ = ["derived_writes", "write_backs"]

_log = logging.getLogger(__name__)


def derived_writes(
    careplan: StoredResource, goal: StoredResource | None, status: Mapping[str, Any]
) -> list[VersionedWrite]:
    """The write-backs one course's new status asks for: none when both are current."""
    writes = []
    content = orjson.loads(careplan.content or "{}")
    if course_phase(content) != status["phase"]:
        body = with_course_phase(content, status["phase"])
        writes.append(
            VersionedWrite(
                "CarePlan", careplan.id, body, careplan.version_id, derived_from_stored=True
            )
        )
    if goal is not None and not goal.deleted and goal.content is not None:
        goal_content = orjson.loads(goal.content)
        if goal_achievement(goal_content) != status["goal_status"]:
            body = with_goal_achievement(goal_content, status["goal_status"])
            writes.append(
                VersionedWrite("Goal", goal.id, body, goal.version_id, derived_from_stored=True)
            )
    return writes


async def write_backs(store: ResourceStore, writes: Sequence[VersionedWrite]) -> None:
    """Write `writes` set-based through the store (cause: the store's, `status-writeback`).

    A resource someone changed since it was read is skipped (its write re-queues the course);
    the version check comes before anything is written, so no savepoint is needed.
    """
    skipped = sum(result is None for result in await store.update_many(writes))
    if skipped:
        _log.info("write-backs skipped: %d resources changed meanwhile", skipped)
