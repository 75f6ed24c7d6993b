"""The start-up heap is frozen once per process (ipt_core/heap.py)."""

import gc

import pytest

from ipt_core import heap


def test_freezes_what_is_alive_then_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_frozen", False)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    long_lived = [[index] for index in range(1000)]

    heap.freeze_startup_heap()
    frozen = gc.get_freeze_count()
    assert frozen >= len(long_lived)

    later = [[index] for index in range(1000)]
    heap.freeze_startup_heap()
    assert gc.get_freeze_count() == frozen, "a second call froze objects created later"
    assert len(later) == 1000
