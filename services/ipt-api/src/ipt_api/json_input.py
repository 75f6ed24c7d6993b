"""Parsing a JSON request body the way every route needs it: strict, bounded, fast.

One parser for the FHIR API and the IPT domain API (README, "Input limits"):

* JSON syntax (orjson), nesting no deeper than the configured depth;
* no duplicate keys in an object: JSON parsers silently keep the last value, so
  `{"gender": "male", "gender": "female"}` would store something the client may not have
  meant. orjson cannot report duplicates, so counts decide: every key of the raw text ends
  with an unescaped `"` followed by `:` (nothing else does), so when the text holds more of
  those than the parsed objects hold keys, a key was dropped. A quick count (which also sees
  `\\":` inside strings) is exact for most bodies; only when it is higher is the exact count
  taken, and only a body with a duplicate is parsed again, by the standard library, to name
  it;
* no control characters (U+0000-U+001F other than tab, CR, LF) in any string or key: FHIR
  strings may not hold them (https://hl7.org/fhir/R4/datatypes.html#string) and PostgreSQL
  cannot store NUL. Raw control characters are already invalid JSON, so only bodies whose
  text holds a `\\u00XX`, `\\b` or `\\f` escape are walked.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from ipt_core.fhir.errors import InvalidRequest

__all__ = ["CONTROL_CHARACTERS", "parse_json"]

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_KEY_END = re.compile(rb'"\s*:')  # every key ends so; so may an escaped `\":` in a string
_CONTROL_ESCAPE = re.compile(rb"\\(?:u00[01][0-9a-fA-F]|[bf])")


def parse_json(raw: bytes, *, max_depth: int) -> Any:
    """Parse `raw` as JSON, refusing (400) what a FHIR server must not store.

    Raises:
        InvalidRequest: invalid JSON, nesting deeper than `max_depth`, a duplicate key,
            or a control character in a string.
    """
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"The body is not valid JSON: {error}") from None
    depth, keys = _shape(parsed)
    if depth > max_depth:
        raise InvalidRequest(f"The JSON is nested deeper than {max_depth} levels")
    if len(_KEY_END.findall(raw)) > keys and _key_ends(raw) > keys:
        _refuse_duplicate_keys(raw)
    if _CONTROL_ESCAPE.search(raw):
        _refuse_control_characters(parsed)
    return parsed


def _shape(value: Any) -> tuple[int, int]:
    # Iterative, so a hostile body cannot exhaust the interpreter's stack.
    deepest = keys = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, level = pending.pop()
        if level > deepest:
            deepest = level
        if isinstance(node, dict):
            keys += len(node)
            pending.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            pending.extend((child, level + 1) for child in node)
    return deepest, keys


def _key_ends(raw: bytes) -> int:
    # Exact: a `"` after an even number of backslashes ends a string, and a string followed
    # by `:` is a key. Only run when the quick count is inconclusive.
    count = 0
    for match in _KEY_END.finditer(raw):
        start = backslashes = match.start()
        while start > 0 and raw[start - 1] == 0x5C:  # backslash
            start -= 1
        if (backslashes - start) % 2 == 0:
            count += 1
    return count


def _refuse_duplicate_keys(raw: bytes) -> None:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidRequest(
                    f"Duplicate key {_shown(key)} in a JSON object: send each key once"
                )
            seen.add(key)
        return dict(pairs)

    json.loads(raw, object_pairs_hook=unique)


def _refuse_control_characters(parsed: Any) -> None:
    pending: list[Any] = [parsed]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if CONTROL_CHARACTERS.search(node):
                raise InvalidRequest("A string holds a control character (U+0000-U+001F)")
        elif isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


def _shown(key: str) -> str:
    # Keys are element names, never patient data; still, cap what is echoed back.
    return repr(CONTROL_CHARACTERS.sub("?", key[:64]))
