"""Small readers and builders of FHIR JSON elements shared by the IPT mappings and use cases."""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from typing import Any

import orjson

from ipt_core.fhir.model import StoredResource
from ipt_core.fhir.references import parse_reference

__all__ = [
    "as_dict",
    "as_list",
    "codes_in",
    "coding",
    "codings",
    "concept",
    "has_code",
    "narrative",
    "reference",
    "reference_id",
    "relative_reference",
    "stored_json",
]

_XHTML = "http://www.w3.org/1999/xhtml"


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """Build a Coding."""
    built = {"system": system, "code": code}
    if display:
        built["display"] = display
    return built


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """Build a CodeableConcept with a single coding."""
    return {"coding": [coding(system, code, display)]}


def codings(concepts: Any) -> Iterator[dict[str, Any]]:
    """Yield every Coding of a CodeableConcept or a list of them, skipping malformed parts."""
    for item in concepts if isinstance(concepts, list) else [concepts]:
        if isinstance(item, dict) and isinstance(item.get("coding"), list):
            yield from (c for c in item["coding"] if isinstance(c, dict))


def has_code(concepts: Any, system: str, code: str) -> bool:
    """Whether a CodeableConcept (or a list of them) holds `system#code`."""
    return any(c.get("system") == system and c.get("code") == code for c in codings(concepts))


def codes_in(concepts: Any, system: str) -> list[Any]:
    """The codes of `system` in a CodeableConcept or list of them, in order (may repeat)."""
    return [c.get("code") for c in codings(concepts) if c.get("system") == system]


def reference(target: str) -> dict[str, Any]:
    """Build a Reference to a relative target such as `Patient/123`."""
    return {"reference": target}


def relative_reference(element: Any, *types: str) -> str | None:
    """Return `Type/id` of a Reference element when it points at one of `types`, else None.

    Absolute URLs and `_history` suffixes are reduced to `Type/id`, so the domain sees
    the same reference whatever form the sender used.
    """
    if not isinstance(element, dict) or not isinstance(element.get("reference"), str):
        return None
    target = parse_reference(element["reference"])
    if target is None or target.type not in types:
        return None
    return f"{target.type}/{target.id}"


def reference_id(element: Any, resource_type: str) -> str | None:
    """Return the id a Reference element points at when its target is `resource_type`."""
    target = relative_reference(element, resource_type)
    return target.split("/", 1)[1] if target else None


def as_list(value: Any) -> list[Any]:
    """Return a JSON array element, or an empty list when it is absent or malformed."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    """Return a JSON object element, or an empty dict when it is absent or malformed."""
    return value if isinstance(value, dict) else {}


def narrative(title: str, facts: list[tuple[str, str]]) -> dict[str, Any]:
    """Build generated narrative: a title and labelled facts, every piece of text escaped."""
    rows = "".join(f"<li>{escape(label)}: {escape(value)}</li>" for label, value in facts)
    listing = f"<ul>{rows}</ul>" if rows else ""
    div = f'<div xmlns="{_XHTML}"><p>{escape(title)}</p>{listing}</div>'
    return {"status": "generated", "div": div}


def stored_json(stored: StoredResource | None) -> dict[str, Any] | None:
    """The JSON of a stored version; None when there is none (absent or a deletion)."""
    if stored is None or stored.deleted or stored.content is None:
        return None
    content = orjson.loads(stored.content)
    return content if isinstance(content, dict) else None
