"""What a module makes public, for the tests that hold a package's `__all__` to it."""

from __future__ import annotations

import inspect
from types import ModuleType

__all__ = ["public_members"]


def public_members(module: ModuleType) -> set[str]:
    """The names of `module` without a leading underscore, submodules left out: a submodule
    appears as an attribute once imported, and is no re-export."""
    return {
        name
        for name, member in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(member)
    }
