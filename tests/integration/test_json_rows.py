"""Rows sent as one JSON parameter (`ipt_core.db.json_rows`) arrive exactly as sent.

The write path binds every table's rows this way (the resource, its index rows, the outbox's
event, the audit record), so a value that changed on the way would be stored changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Boolean, Integer, Numeric, Text, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine

from ipt_core.db.fixed import FixedStatement
from ipt_core.db.json_rows import json_rows, rows_json
from ipt_core.db.unnest import INSTANT

_TYPES: dict[str, TypeEngine[Any] | type] = {
    "text": Text,
    "number": Numeric,
    "instant": INSTANT,
    "flag": Boolean,
    "count": Integer,
}
_ROWS = json_rows("r", "r_json", **_TYPES)
_SELECT = FixedStatement(select(*_ROWS.c))


async def test_values_arrive_exactly_as_sent(db: AsyncEngine) -> None:
    sent = [
        ('quote " backslash \\ newline \n tab \t', Decimal("1.10"), datetime.now(UTC), True, 1),
        ("Zoë 東京 \u2028 emoji 🙂", Decimal("-0.000001"), datetime(1, 1, 2, tzinfo=UTC), False, 0),
        (
            "",
            Decimal("12345678901234567890.123456789"),
            datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-5))),
            None,
            -7,
        ),
        (None, None, None, None, None),
    ]
    async with db.connect() as conn:
        rows = await _SELECT.execute(conn, {"r_json": rows_json(list(_TYPES), sent)})
    received = [tuple(row[name] for name in _TYPES) for row in rows]
    assert received == sent
    assert str(received[0][1]) == "1.10"  # the scale is kept, not only the value


def test_a_value_json_cannot_carry_is_refused_before_sending() -> None:
    with pytest.raises(TypeError, match="set"):
        rows_json(["text"], [({"a"},)])
