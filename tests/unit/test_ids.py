"""`new_id` makes valid, unique version-4 UUIDs, `new_time_ordered_id` version-7 ones in time
order, and a forked child never repeats its parent's (ipt_core/ids.py)."""

from __future__ import annotations

import multiprocessing
import time
import uuid

from ipt_core.ids import new_id, new_time_ordered_id


def test_ids_are_version_4_uuids_in_their_canonical_form() -> None:
    for _ in range(1000):
        made = new_id()
        parsed = uuid.UUID(made)
        assert str(parsed) == made  # lower-case, hyphenated, 36 characters
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_time_ordered_ids_are_version_7_uuids_of_the_current_millisecond() -> None:
    before_ms = time.time_ns() // 1_000_000
    made = new_time_ordered_id()
    after_ms = time.time_ns() // 1_000_000
    parsed = uuid.UUID(made)
    assert str(parsed) == made
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before_ms <= parsed.int >> 80 <= after_ms  # the first 48 bits: Unix milliseconds


def test_time_ordered_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    made = []
    for _ in range(5):
        made.append(new_time_ordered_id())
        time.sleep(0.002)
    assert made == sorted(made)  # as strings, as the unique index compares them
    assert len({new_time_ordered_id() for _ in range(50_000)}) == 50_000  # same ms: random


def test_ids_are_unique_across_batches() -> None:
    made = [new_id() for _ in range(100_000)]  # ~390 batches of random bytes
    assert len(set(made)) == len(made)


def _child_ids(queue: multiprocessing.Queue[list[str]]) -> None:
    queue.put([new_id() for _ in range(10)])


def test_a_forked_child_draws_its_own_random_bytes() -> None:
    new_id()  # the parent holds a batch, which the child would inherit
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = context.Queue()
    child = context.Process(target=_child_ids, args=(queue,))
    child.start()
    from_child = queue.get(timeout=30)
    child.join(timeout=30)
    from_parent = [new_id() for _ in range(10)]
    assert not set(from_child) & set(from_parent)
