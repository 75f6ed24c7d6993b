"""A small FHIRPath subset for the registry's search-parameter paths."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

__all__ = ["top_element", "values_at"]

_EXTENSION_STEP = re.compile(r"^extension\((?P<url>[^)]+)\)$")


def values_at(resource: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    """Yield `(element_name, value)` for every value at `path` in `resource`.

    The element name tells a choice element's type (`effectiveDateTime` vs `effectivePeriod`).
    """
    yield from _walk(resource, _steps(path), 0, "")


def top_element(path: str) -> str | None:
    """The resource's own element `path` starts at (`onset[x]`, `extension`), if it has one."""
    steps = _steps(path)
    if not steps:
        return None
    kind, key = steps[0]
    return {_EXTENSION: "extension", _CHOICE: f"{key}[x]"}.get(kind, key)


_ELEMENT, _CHOICE, _EXTENSION = range(3)
_Step = tuple[int, str]  # (kind, the element's name | a choice's prefix | an extension's url)


@cache
def _steps(path: str) -> tuple[_Step, ...]:
    """The steps of `path` after the resource type, parsed once per path: every write indexes
    every parameter's paths, and parsing them per call was ~6% of a bulk load's API CPU."""
    steps: list[_Step] = []
    for step in _split(path)[1:]:  # the first step is the resource type
        extension = _EXTENSION_STEP.match(step)
        if extension:
            steps.append((_EXTENSION, extension["url"]))
        elif step.endswith("[x]"):
            steps.append((_CHOICE, step[:-3]))
        else:
            steps.append((_ELEMENT, step))
    return tuple(steps)


def _split(path: str) -> list[str]:
    # Extension URLs contain dots; keep `extension(…)` steps whole.
    steps: list[str] = []
    depth = 0
    current = ""
    for char in path:
        if char == "." and depth == 0:
            steps.append(current)
            current = ""
            continue
        depth += (char == "(") - (char == ")")
        current += char
    steps.append(current)
    return steps


def _walk(node: Any, steps: tuple[_Step, ...], at: int, name: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, steps, at, name)
        return
    if at == len(steps):
        yield name, node
        return
    if not isinstance(node, dict):
        return
    kind, key = steps[at]
    if kind == _ELEMENT:
        if key in node:
            yield from _walk(node[key], steps, at + 1, key)
    elif kind == _CHOICE:
        for element, value in node.items():
            if element.startswith(key) and element[len(key) : len(key) + 1].isupper():
                yield from _walk(value, steps, at + 1, element)
    else:
        for item in node.get("extension", []):
            if isinstance(item, dict) and item.get("url") == key:
                yield from _walk(item, steps, at + 1, "extension")
