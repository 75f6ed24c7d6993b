"""Page positions as JSON, for the opaque page tokens of `next`/`previous` links.

Decoding checks every value against the search's order, so a tampered token is refused
(400) instead of reaching SQL with the wrong types.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Boolean, DateTime, Numeric

from ipt_core.fhir.errors import InvalidRequest
from ipt_core.fhir.search._page import Position
from ipt_core.fhir.search._sort import SortPlan

__all__ = ["position_from_json", "position_to_json"]


def position_to_json(position: Position) -> dict[str, Any]:
    """Render `position` as JSON-safe values."""
    return {
        "s": position.snapshot,
        "k": [_json_value(value) for value in position.key],
        "b": position.backward,
    }


def position_from_json(plan: SortPlan, data: dict[str, Any]) -> Position:
    """Rebuild a position of `plan`'s order from `position_to_json` output.

    Raises:
        InvalidRequest: when `data` is not a position of this order.
    """
    snapshot, key, backward = data.get("s"), data.get("k"), data.get("b")
    parts = plan.components
    if (
        not isinstance(snapshot, int)
        or not isinstance(backward, bool)
        or not isinstance(key, list)
        or len(key) != len(parts)
    ):
        raise _invalid()
    return Position(
        snapshot, tuple(_value(v, p.type) for v, p in zip(key, parts, strict=True)), backward
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _value(raw: Any, type_: Any) -> Any:
    try:
        if isinstance(type_, Boolean):
            if not isinstance(raw, bool):
                raise ValueError
            return raw
        if not isinstance(raw, str):
            raise ValueError
        if isinstance(type_, DateTime):
            moment = datetime.fromisoformat(raw)
            if moment.tzinfo is None:
                raise ValueError
            return moment
        if isinstance(type_, Numeric):
            return Decimal(raw)
        return raw
    except (ValueError, InvalidOperation):
        raise _invalid() from None


def _invalid() -> InvalidRequest:
    return InvalidRequest("The page token is not valid for this search", expression=("_page",))
