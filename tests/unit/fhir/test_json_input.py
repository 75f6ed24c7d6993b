"""The shared strict JSON parser: duplicate keys, control characters, depth, and its cost."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipt_api.json_input import _shape, parse_json
from ipt_core.fhir.errors import InvalidRequest


def careplan(size: int = 5000) -> dict[str, Any]:
    """A CarePlan of about `size` bytes of JSON, with many keys and nested activities."""
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
        "activity": [],
    }
    while len(orjson.dumps(plan)) < size:
        n = len(plan["activity"])
        plan["activity"].append(
            {
                "detail": {
                    "kind": "Appointment",
                    "status": "scheduled",
                    "description": f'Session {n}: say "hi": then listen',
                    "scheduledPeriod": {"start": "2026-01-05T09:00:00Z"},
                }
            }
        )
    return plan


def test_a_valid_body_parses_like_orjson() -> None:
    raw = orjson.dumps(careplan())
    assert parse_json(raw, max_depth=64) == orjson.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 2}',
        b'{"a": {"b": 1, "b" : 1}}',
        b'[{"x": 1}, {"y": [{"z": 1, "z": 1}]}]',
    ],
)
def test_duplicate_keys_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequest, match="Duplicate key"):
        parse_json(raw, max_depth=64)


def test_the_same_key_in_different_objects_is_fine() -> None:
    assert parse_json(b'[{"a": 1}, {"a": 2}, {"b": "\\": x"}]', max_depth=8)


@pytest.mark.parametrize("escape", [b"\\u0000", b"\\u001F", b"\\b", b"\\f", b"\\u0007"])
def test_control_characters_are_refused(escape: bytes) -> None:
    with pytest.raises(InvalidRequest, match="control character"):
        parse_json(b'{"a": ["x' + escape + b'y"]}', max_depth=8)


def test_tab_newline_and_an_escaped_backslash_u_are_fine() -> None:
    assert parse_json(b'{"a": "x\\t\\n\\r\\\\u0000"}', max_depth=8) == {"a": "x\t\n\r\\u0000"}


def test_depth_is_bounded() -> None:
    with pytest.raises(InvalidRequest, match="deeper"):
        parse_json(b"[" * 10 + b"]" * 10, max_depth=9)


def _plain_shape(value: Any) -> tuple[int, int]:
    """Depth (a scalar is 1, a container one more than its deepest member) and key count."""
    if isinstance(value, dict):
        members = [_plain_shape(v) for v in value.values()]
        return 1 + max((d for d, _ in members), default=0), len(value) + sum(k for _, k in members)
    if isinstance(value, list):
        members = [_plain_shape(v) for v in value]
        return 1 + max((d for d, _ in members), default=0), sum(k for _, k in members)
    return 1, 0


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=2), children, max_size=4)
    ),
    max_leaves=30,
)


@given(_json)
def test_depth_and_keys_are_those_of_the_plain_definition(value: Any) -> None:
    # `_shape` is iterative (a hostile body cannot exhaust the stack): pinned to the definition.
    assert _shape(value) == _plain_shape(value)


def test_a_valid_careplan_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only orjson parses a valid body (even one with `\":` in its strings): the standard
    # library's slower parser is kept for bodies that do repeat a key.
    def slow_parser_used(*args: object, **kwargs: object) -> None:
        raise AssertionError("the slow duplicate-key parser ran on a valid body")

    monkeypatch.setattr(json, "loads", slow_parser_used)
    raw = orjson.dumps(careplan(5000))
    assert len(raw) >= 5000
    assert parse_json(raw, max_depth=64) == orjson.loads(raw)


def test_cost_on_a_5_kb_careplan() -> None:
    # Printed for the README's numbers; asserted loosely (the machine may be busy).
    raw = orjson.dumps(careplan(5000))
    rounds = 1000
    start = time.perf_counter()
    for _ in range(rounds):
        orjson.loads(raw)
    plain = (time.perf_counter() - start) / rounds
    start = time.perf_counter()
    for _ in range(rounds):
        parse_json(raw, max_depth=64)
    checked = (time.perf_counter() - start) / rounds
    print(f"5 KB CarePlan: orjson {plain * 1e6:.0f} us, parse_json {checked * 1e6:.0f} us")
    assert checked < 5e-3
