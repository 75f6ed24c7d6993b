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
    steps = _split(path)[1:]  # the first step is the resource type
    yield from _walk(resource, steps, "")


@cache
def top_element(path: str) -> str | None:
    """The resource's own element `path` starts at (`onset[x]`, `extension`), if it has one."""
    steps = _split(path)
    if len(steps) < 2:
        return None
    return "extension" if _EXTENSION_STEP.match(steps[1]) else steps[1]


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


def _walk(node: Any, steps: list[str], name: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, steps, name)
        return
    if not steps:
        yield name, node
        return
    if not isinstance(node, dict):
        return
    step, rest = steps[0], steps[1:]
    extension = _EXTENSION_STEP.match(step)
    if extension:
        for item in node.get("extension", []):
            if isinstance(item, dict) and item.get("url") == extension["url"]:
                yield from _walk(item, rest, "extension")
    elif step.endswith("[x]"):
        prefix = step[:-3]
        for key, value in node.items():
            if key.startswith(prefix) and key[len(prefix) : len(prefix) + 1].isupper():
                yield from _walk(value, rest, key)
    elif step in node:
        yield from _walk(node[step], rest, step)
