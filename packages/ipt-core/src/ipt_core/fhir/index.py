"""Search-index rows of a resource, extracted on write from the registry's parameters.

Rows are written in the same transaction as the resource, so a search never sees a resource
whose index is missing or stale.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ipt_core.fhir._paths import top_element, values_at
from ipt_core.fhir.references import parse_reference
from ipt_core.fhir.registry import ResourceDefinition, SearchParam
from ipt_core.instants import MAX_INSTANT, MIN_INSTANT, date_range

__all__ = [
    "DateEntry",
    "IndexEntries",
    "NumberEntry",
    "ReferenceEntry",
    "StringEntry",
    "TokenEntry",
    "index_entries",
    "normalize_string",
    "optional_token_key",
    "param_entries",
    "same_index",
    "string_key",
    "token_key",
]


@dataclass(frozen=True)
class TokenEntry:
    """A coded value: `system|code`, with the display or text kept for `:text` searches."""

    param: str
    system: str | None
    code: str | None
    display: str | None = None


@dataclass(frozen=True)
class StringEntry:
    """A string value, normalized for the default search and kept exact for `:exact`."""

    param: str
    value: str
    exact: str


@dataclass(frozen=True)
class DateEntry:
    """A date value as the inclusive range of instants it stands for."""

    param: str
    low: datetime
    high: datetime


@dataclass(frozen=True)
class ReferenceEntry:
    """A reference to another resource, by type (when known) and id or absolute URL."""

    param: str
    target_type: str | None
    target_id: str


@dataclass(frozen=True)
class NumberEntry:
    """A number or quantity value, with the quantity's unit system and code."""

    param: str
    value: Decimal
    system: str | None = None
    code: str | None = None


IndexEntries = dict[str, list[Any]]  # search-index table name -> its rows for one resource


def index_entries(definition: ResourceDefinition, resource: dict[str, Any]) -> IndexEntries:
    """Return the index rows of `resource`, grouped by search-index table."""
    entries: IndexEntries = {
        "search_token": [],
        "search_string": [],
        "search_date": [],
        "search_reference": [],
        "search_number": [],
    }
    for param in definition.params.values():
        for entry in param_entries(param, resource):
            entries[_TABLE_OF[type(entry)]].append(entry)
    return entries


def param_entries(param: SearchParam, resource: dict[str, Any]) -> Iterator[object]:
    """The index rows of one search parameter of `resource` (e.g. whose patient it is)."""
    for path in param.paths:
        for element, value in values_at(resource, path):
            yield from _entries(param, element, value)


def same_index(definition: ResourceDefinition, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether `new` has the index rows of `old`: every element a parameter reads is equal.

    Compares whole top-level elements (`extension` as a whole, every `onset…` of `onset[x]`),
    so a False may be needless but a True never is. `meta` counts as changed: each version
    stamps its own.
    """
    elements = _indexed_elements(definition)
    if elements is None:
        return False
    for element in elements:
        if element.endswith("[x]"):
            if _choices(old, element[:-3]) != _choices(new, element[:-3]):
                return False
        elif old.get(element) != new.get(element):
            return False
    return True


# type -> (the params they were derived from, the top-level elements they read, or None when
# one reads `meta` or the whole resource): derived once per definition, not per write (the
# status engine asks for every write-back: 4.9 -> 1.3 µs for a CarePlan, bench/PROFILE.md,
# "Eleventh round").
_ELEMENTS: dict[str, tuple[object, tuple[str, ...] | None]] = {}


def _indexed_elements(definition: ResourceDefinition) -> tuple[str, ...] | None:
    cached = _ELEMENTS.get(definition.type)
    if cached is None or cached[0] is not definition.params:  # registered anew: derive again
        cached = _ELEMENTS[definition.type] = (definition.params, _top_elements(definition))
    return cached[1]


def _top_elements(definition: ResourceDefinition) -> tuple[str, ...] | None:
    elements: dict[str, None] = {}  # in the params' order, each once
    for param in definition.params.values():
        for path in param.paths:
            element = top_element(path)
            if element is None or element == "meta":
                return None
            elements[element] = None
    return tuple(elements)


def _choices(resource: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k.startswith(prefix)}


# PostgreSQL refuses btree index rows over ~2.7 kB, and FHIR strings may be 1 MiB long. Index
# columns therefore hold a bounded key (README, "Input limits"): strings their first
# STRING_KEY_CHARS normalized characters (prefix search stays exact for shorter search
# values; `:exact` compares the full `exact` column), tokens and reference ids the value
# itself when short, else a prefix plus the SHA-256 of the whole value (equality stays exact).
STRING_KEY_CHARS = 500
_TOKEN_KEY_CHARS = 256
_TOKEN_PREFIX_CHARS = _TOKEN_KEY_CHARS - 64


def token_key(value: str) -> str:
    """The index key of a code, system or reference id: itself, or prefix#sha256 when long."""
    if len(value) <= _TOKEN_KEY_CHARS:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()
    return f"{value[:_TOKEN_PREFIX_CHARS]}#{digest}"  # 257 characters: no short value clashes


def optional_token_key(value: str | None) -> str | None:
    """`token_key` of a value that may be absent."""
    return None if value is None else token_key(value)


def string_key(value: str) -> str:
    """The index key of a string: normalized, and at most `STRING_KEY_CHARS` long."""
    return normalize_string(value)[:STRING_KEY_CHARS]


def normalize_string(value: str) -> str:
    """Lower-case `value` and remove accents, as FHIR string search compares."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _entries(param: SearchParam, element: str, value: Any) -> Iterator[object]:
    if param.type == "token":
        yield from _tokens(param.name, value)
    elif param.type == "string":
        yield from _strings(param.name, value)
    elif param.type == "date":
        yield from _dates(param.name, value)
    elif param.type == "reference":
        yield from _references(param, value)
    elif param.type in {"number", "quantity"}:
        yield from _numbers(param.name, value)


def _tokens(name: str, value: Any) -> Iterator[TokenEntry]:
    if isinstance(value, bool):
        yield _token(name, None, "true" if value else "false")
    elif isinstance(value, str):
        yield _token(name, None, value)
    elif isinstance(value, dict):
        if "coding" in value or "text" in value:  # CodeableConcept
            for coding in value.get("coding", []):
                yield from _tokens(name, coding)
            if "text" in value:
                yield _token(name, None, None, value["text"])
        elif "value" in value and "code" not in value:  # Identifier, ContactPoint
            yield _token(name, value.get("system"), str(value["value"]))
        elif "code" in value or "system" in value:  # Coding
            yield _token(name, value.get("system"), value.get("code"), value.get("display"))


def _token(
    name: str, system: str | None, code: str | None, display: str | None = None
) -> TokenEntry:
    """A token's index row: its system and code as index keys (`token_key`)."""
    return TokenEntry(name, optional_token_key(system), optional_token_key(code), display)


def _strings(name: str, value: Any) -> Iterator[StringEntry]:
    if isinstance(value, str):
        yield StringEntry(name, string_key(value), value)
    elif isinstance(value, dict):  # HumanName, Address: every part is searchable
        for part in (
            "text",
            "family",
            "given",
            "prefix",
            "suffix",
            "line",
            "city",
            "state",
            "postalCode",
            "country",
        ):
            for item in (
                value.get(part, []) if isinstance(value.get(part), list) else [value.get(part)]
            ):
                if isinstance(item, str):
                    yield StringEntry(name, string_key(item), item)


def _dates(name: str, value: Any) -> Iterator[DateEntry]:
    if isinstance(value, str):
        low, high = date_range(value)
        yield DateEntry(name, low, high)
    elif isinstance(value, dict) and ("start" in value or "end" in value):  # Period
        low = date_range(value["start"])[0] if "start" in value else MIN_INSTANT
        high = date_range(value["end"])[1] if "end" in value else MAX_INSTANT
        yield DateEntry(name, low, high)


def _references(param: SearchParam, value: Any) -> Iterator[ReferenceEntry]:
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return
    target = parse_reference(value["reference"])
    if target is None:
        return
    if param.targets and target.type is not None and target.type not in param.targets:
        return  # e.g. `patient` indexes only references to a Patient
    yield ReferenceEntry(param.name, target.type, token_key(target.id))


def _numbers(name: str, value: Any) -> Iterator[NumberEntry]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        yield NumberEntry(name, Decimal(str(value)))
    elif isinstance(value, dict) and isinstance(value.get("value"), int | float):
        code = value.get("code") or value.get("unit")
        yield NumberEntry(name, Decimal(str(value["value"])), value.get("system"), code)


_TABLE_OF: dict[type, str] = {
    TokenEntry: "search_token",
    StringEntry: "search_string",
    DateEntry: "search_date",
    ReferenceEntry: "search_reference",
    NumberEntry: "search_number",
}
