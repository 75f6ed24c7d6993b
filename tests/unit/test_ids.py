"""`new_id` makes valid, unique version-4 UUIDs, and a forked child never repeats its parent's
(ipt_core/ids.py)."""

from __future__ import annotations

import multiprocessing
import uuid

from ipt_core.ids import new_id


def test_ids_are_version_4_uuids_in_their_canonical_form() -> None:
    for _ in range(1000):
        made = new_id()
        parsed = uuid.UUID(made)
        assert str(parsed) == made  # lower-case, hyphenated, 36 characters
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


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
