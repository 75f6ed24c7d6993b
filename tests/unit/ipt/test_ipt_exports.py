"""The public API of `ipt_core.ipt` is exactly its `__all__`."""

from __future__ import annotations

import ipt_core.ipt as ipt
from tests.support.exports import public_members


def test_all_lists_every_public_member() -> None:
    assert public_members(ipt) == set(ipt.__all__)


def test_all_is_sorted_and_resolves() -> None:
    assert ipt.__all__ == sorted(ipt.__all__)
    assert all(hasattr(ipt, name) for name in ipt.__all__)
