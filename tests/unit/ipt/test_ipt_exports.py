"""The public API of `ipt_core.ipt` is exactly its `__all__`."""

from __future__ import annotations

import types

import ipt_core.ipt as ipt


def test_all_lists_every_public_member() -> None:
    public = {
        name
        for name, member in vars(ipt).items()
        if not name.startswith("_") and not isinstance(member, types.ModuleType)
    }
    assert public == set(ipt.__all__)


def test_all_is_sorted_and_resolves() -> None:
    assert ipt.__all__ == sorted(ipt.__all__)
    assert all(hasattr(ipt, name) for name in ipt.__all__)
