"""The order a batch is projected in (ipt/projections/_schedule.py): long runs of one type,
each group of tied changes in write order, nothing moved across a barrier."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ipt_core.fhir.model import Change, StoredResource
from ipt_core.ipt.projections._schedule import schedule

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)


def _change(
    resource_type: str, id_: str, patient: str, previous: dict[str, Any] | None = None, **more: Any
) -> Change:
    body = {
        "resourceType": resource_type,
        "id": id_,
        "subject": {"reference": f"Patient/{patient}"},
    }
    stored = StoredResource(resource_type, id_, 2 if previous else 1, NOW, False, None)
    before = None
    if previous is not None:
        before = StoredResource(resource_type, id_, 1, NOW, False, orjson.dumps(previous).decode())
    return Change("update" if previous else "create", stored, body | more, before)


def _course(patient: str) -> list[Change]:
    return [
        _change("CarePlan", f"c-{patient}", patient),
        *[_change("Encounter", f"e{n}-{patient}", patient) for n in range(3)],
        *[_change("Observation", f"q{n}-{patient}", patient) for n in range(2)],
    ]


def _names(changes: list[Change]) -> list[str]:
    return [change.stored.id for change in changes]


def test_courses_of_several_patients_make_one_run_per_type() -> None:
    batch = [*_course("a"), *_course("b"), *_course("c")]
    ordered = schedule(batch)
    types = [change.stored.resource_type for change in ordered]
    assert types == ["CarePlan"] * 3 + ["Encounter"] * 9 + ["Observation"] * 6
    assert sorted(_names(ordered)) == sorted(_names(batch))


def test_a_course_after_its_sessions_stays_after_them() -> None:
    # Patient a's sessions come before its course: reordering them would let the sessions
    # see a course that, written one by one, they could not have seen.
    late = [
        _change("Encounter", "e-a", "a"),
        _change("CarePlan", "c-a", "a"),
        _change("Encounter", "f-a", "a"),
    ]
    ordered = _names(schedule([*late, *_course("b")]))
    assert ordered.index("e-a") < ordered.index("c-a") < ordered.index("f-a")


def test_a_course_listing_another_patients_session_keeps_their_order() -> None:
    # c-b, written after e-a, re-links it (linking rule 2): left to themselves, a course
    # would go before a session.
    listing: dict[str, Any] = {"activity": [{"outcomeReference": [{"reference": "Encounter/e-a"}]}]}
    batch = [_change("Encounter", "e-a", "a"), _change("CarePlan", "c-b", "b", **listing)]
    assert _names(schedule(batch)) == ["e-a", "c-b"]


def test_an_update_is_tied_to_the_patient_it_had() -> None:
    # e-x moves from patient a to patient b: it stays between a's and b's changes around it.
    batch = [
        _change("Encounter", "e-a", "a"),
        _change("CarePlan", "c-a", "a"),
        _change("Encounter", "e-x", "b", previous={"subject": {"reference": "Patient/a"}}),
    ]
    ordered = _names(schedule(batch))
    assert ordered == ["e-a", "c-a", "e-x"]


def test_nothing_moves_across_a_barrier() -> None:
    barrier = _change("Condition", "d-z", "z")
    ordered = schedule([*_course("a"), barrier, *_course("b")])
    position = ordered.index(barrier)
    assert {c.stored.id for c in ordered[:position]} == set(_names(_course("a")))


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["CarePlan", "Encounter", "Observation", "Goal"]),
            st.sampled_from(["a", "b", "c"]),
        ),
        max_size=30,
    )
)
def test_each_patients_changes_keep_their_write_order(picks: list[tuple[str, str]]) -> None:
    batch = [_change(kind, f"{kind}-{n}", patient) for n, (kind, patient) in enumerate(picks)]
    ordered = schedule(batch)
    assert sorted(_names(ordered)) == sorted(_names(batch))
    position = {change.stored.id: n for n, change in enumerate(ordered)}
    for i, first in enumerate(batch):
        for second in batch[i + 1 :]:
            same_patient = first.resource["subject"] == second.resource["subject"]  # type: ignore[index]
            barrier = "Goal" in (first.stored.resource_type, second.stored.resource_type)
            if same_patient or barrier:
                assert position[first.stored.id] < position[second.stored.id]
