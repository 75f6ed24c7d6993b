"""The public API of `ipt_core.ipt` is exactly its `__all__`, and matches `codes`."""

from __future__ import annotations

import types
from typing import get_args

import ipt_core.ipt as ipt
from ipt_core.ipt import codes


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


def test_domain_literals_match_the_codes() -> None:
    assert get_args(ipt.ProblemArea) == codes.PROBLEM_AREAS
    assert get_args(ipt.CourseType) == codes.COURSE_TYPES
    assert get_args(ipt.Phase) == codes.PHASES
