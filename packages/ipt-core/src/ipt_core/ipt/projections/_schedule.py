"""The order a batch's changes are projected in: fewer runs, the same rows.

The projections of a batch go run by run, a run being consecutive changes of one type
(`_listener._runs`); a run of CarePlans, Encounters or Observations is projected set-based,
with a fixed number of statements. A bulk load interleaves types patient by patient (a course, its
sessions, its PHQ-9s, the next patient's course …), so in write order a 100-entry transaction
of five courses made fifteen runs.

What a projection reads and writes belongs to the patient of its resource: a session's link
reads its patient's courses, a PHQ-9 concerns its patient's courses, a course's row is its
own. So changes of different patients commute, and `schedule` reorders a batch as long as
every *group* keeps its write order. A group is the changes tied by a patient, by a resource
(the same one twice), by a course a session or maintenance course names, or by a session a
course lists: whatever one change's projection may read of another's. Within a group, a
change keeps its place after every earlier one (an epoch starts again where the types go
back: a course after its sessions); across groups, the changes of one type and epoch come
together.

A change whose ties cannot be told from its content is a barrier that nothing crosses: an
Appointment (its Encounters, of any patient, read its row), a Condition or Goal (the courses
citing it are found by reference), and types without a rank.

Tested in tests/unit/ipt/test_projection_schedule.py and
tests/integration/test_projection_batches.py; docs/architecture.md, "Write path".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

from ipt_core.fhir.model import Change
from ipt_core.ipt._careplan_facts import based_on_course_id, outcome_references
from ipt_core.ipt._session import session_course_link
from ipt_core.ipt.fhir_json import as_list, reference_id, stored_json

__all__ = ["schedule"]

# The order of types within an epoch: a course before the sessions that may link to it, the
# sessions before the PHQ-9s (which read neither).
_RANK: Final = {"CarePlan": 0, "Encounter": 1, "Observation": 2}


def schedule(changes: Sequence[Change]) -> list[Change]:
    """`changes` in the order to project them: each group's in write order (module doc)."""
    ordered: list[Change] = []
    segment: list[tuple[Change, list[str]]] = []
    for change in changes:
        ties = _ties(change)
        if ties is None:  # a barrier: project what came before, then it
            ordered += _interleaved(segment)
            ordered.append(change)
            segment = []
        else:
            segment.append((change, ties))
    return ordered + _interleaved(segment)


def _interleaved(segment: list[tuple[Change, list[str]]]) -> list[Change]:
    groups = _Groups()
    for _, ties in segment:
        groups.join(ties)
    last: dict[str, tuple[int, int]] = {}  # group -> its last (epoch, rank)
    keyed: list[tuple[int, int, int, Change]] = []
    for position, (change, ties) in enumerate(segment):
        group = groups.root(ties[0])
        rank = _RANK[change.stored.resource_type]
        epoch, before = last.get(group, (0, -1))
        if rank < before:
            epoch += 1
        last[group] = (epoch, rank)
        keyed.append((epoch, rank, position, change))
    keyed.sort(key=lambda entry: entry[:3])
    return [change for *_, change in keyed]


def _ties(change: Change) -> list[str] | None:
    """The references `change` is tied to (its own first), or None for a barrier."""
    resource_type = change.stored.resource_type
    if resource_type not in _RANK:
        return None
    ties = [f"{resource_type}/{change.stored.id}"]
    for content in _contents(change):
        if (patient := reference_id(content.get("subject"), "Patient")) is not None:
            ties.append(f"Patient/{patient}")
        if resource_type == "CarePlan":
            ties += outcome_references(content)
            if (acute := based_on_course_id(content)) is not None:
                ties.append(f"CarePlan/{acute}")
        elif resource_type == "Encounter":
            if (course := session_course_link(content)) is not None:
                ties.append(f"CarePlan/{course}")
            ties += (
                f"Appointment/{appointment}"
                for appointment in map(_appointment_id, as_list(content.get("appointment")))
                if appointment is not None
            )
    return ties


def _contents(change: Change) -> Iterator[dict[str, Any]]:
    """The change's content, and the stored one it replaced (a patient may have changed)."""
    for content in (change.resource, stored_json(change.previous)):
        if content is not None:
            yield content


def _appointment_id(element: Any) -> str | None:
    return reference_id(element, "Appointment")


class _Groups:
    """Union-find over references: two ties of one change put them in one group."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def root(self, key: str) -> str:
        parent = self._parent
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]  # path halving
            key = parent[key]
        return key

    def join(self, keys: list[str]) -> None:
        first = self.root(keys[0])
        for key in keys[1:]:
            other = self.root(key)
            if other != first:
                self._parent[other] = first
