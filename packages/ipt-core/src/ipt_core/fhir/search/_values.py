"""Parsing of search values: escapes, comma lists, prefixes, tokens, dates, numbers, references."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import cast, get_args

from ipt_core.fhir.errors import InvalidRequest
from ipt_core.fhir.references import parse_reference
from ipt_core.fhir.registry import SearchParam
from ipt_core.fhir.search._model import (
    DateValue,
    NumberValue,
    Prefix,
    ReferenceValue,
    StringValue,
    TokenValue,
    Value,
)
from ipt_core.instants import date_range

__all__ = ["parse_values", "split_escaped"]

_PREFIXES = frozenset(get_args(Prefix))


def split_escaped(text: str, separator: str) -> list[str]:
    """Split `text` at `separator`, honouring the FHIR escapes `\\,` `\\|` `\\$` `\\\\`."""
    parts: list[str] = []
    current = ""
    escaped = False
    for char in text:
        if escaped:
            current += char if char in ",|$\\" else "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current + ("\\" if escaped else ""))
    return parts


def parse_values(param: SearchParam, raw: str, *, now: datetime | None = None) -> tuple[Value, ...]:
    """Parse the comma-separated values of one parameter occurrence.

    Raises:
        InvalidRequest: when a value is empty or malformed for the parameter's type.
    """
    values = []
    for item in _split_or(raw):
        if item == "":
            raise InvalidRequest(f"Empty value for {param.name!r}", expression=(param.name,))
        values.append(_parse_one(param, item, now or datetime.now(UTC)))
    return tuple(values)


def _split_or(raw: str) -> list[str]:
    # Split at unescaped commas, keeping the other escapes for the per-type parsers.
    if "\\" not in raw:
        return raw.split(",")  # no escapes, nearly every value: 0.1 µs, not 2.5 (a reference)
    return _split_escaped(raw)


def _split_escaped(raw: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in raw:
        if escaped:
            current += "\\" + char if char != "," else ","
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _parse_one(param: SearchParam, item: str, now: datetime) -> Value:
    if param.type == "token":
        return _token(item)
    if param.type == "date":
        return _date(param, item, now)
    if param.type in {"number", "quantity"}:
        return _number(param, item)
    if param.type == "reference":
        return _reference(item)
    return StringValue(_unescape(item))


def _unescape(item: str) -> str:
    # A separator that cannot occur: only the escapes are undone.
    return split_escaped(item, "\0")[0]


def _token(item: str) -> TokenValue:
    parts = split_escaped(item, "|")
    if len(parts) == 1:
        return TokenValue(None, parts[0], match_system=False)
    system, code = parts[0], "|".join(parts[1:])
    return TokenValue(system or None, code or None, match_system=True)


def _prefixed(item: str) -> tuple[Prefix, str]:
    head = item[:2]
    if head in _PREFIXES and len(item) > 2 and (item[2].isdigit() or item[2] in "-+."):
        return cast(Prefix, head), item[2:]
    return "eq", item


def _date(param: SearchParam, item: str, now: datetime) -> DateValue:
    prefix, text = _prefixed(item)
    try:
        low, high = date_range(text.replace(" ", "+"))  # an unencoded "+" arrives as a space
    except ValueError:
        raise InvalidRequest(
            f"{item!r} is not a FHIR date for {param.name!r}", expression=(param.name,)
        ) from None
    if prefix == "ap":
        # "Approximately": the spec suggests 10% of the distance to now.
        slack = max(abs(now - low) / 10, timedelta(days=1))
        low, high = low - slack, high + slack
    return DateValue(prefix, low, high)


def _number(param: SearchParam, item: str) -> NumberValue:
    prefix, text = _prefixed(item)
    number, system, code = text, None, None
    if param.type == "quantity":
        parts = split_escaped(text, "|")
        if len(parts) not in {1, 3}:
            raise InvalidRequest(
                f"{item!r} is not a quantity (number|system|code)", expression=(param.name,)
            )
        number = parts[0]
        if len(parts) == 3:
            system, code = parts[1] or None, parts[2] or None
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise InvalidRequest(
            f"{item!r} is not a number for {param.name!r}", expression=(param.name,)
        ) from None
    if not value.is_finite():
        raise InvalidRequest(f"{item!r} is not a finite number", expression=(param.name,))
    # Precision: "100" stands for [99.5, 100.5), "5.4" for [5.35, 5.45).
    exponent = value.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1)
    if prefix == "ap":
        half = max(half, abs(value) / 10)
    return NumberValue(prefix, value, value - half, value + half, system, code)


def _reference(item: str) -> ReferenceValue:
    target = parse_reference(item)
    if target is None:
        raise InvalidRequest(f"{item!r} is not a reference")
    return ReferenceValue(target.type, target.id)
