"""The API splits IPT_DATABASE_POOL_SIZE between its read pool and the engine's transactions
(ipt_api/settings.py; docs/architecture.md, "Read path")."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ipt_api.settings import ApiSettings


def _settings(**values: object) -> ApiSettings:
    return ApiSettings(auth_mode="disabled", api_host="127.0.0.1", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pool", "read", "expected"),
    [(20, None, (10, 10)), (5, None, (2, 3)), (2, None, (1, 1)), (20, 4, (4, 16))],
)
def test_the_pool_is_split_between_reads_and_transactions(
    pool: int, read: int | None, expected: tuple[int, int]
) -> None:
    settings = _settings(database_pool_size=pool, database_read_pool_size=read)
    assert (settings.read_pool_size, settings.transaction_pool_size) == expected
    assert sum(expected) == pool  # never more connections than the pool's size


@pytest.mark.parametrize(("pool", "read"), [(1, None), (10, 10), (10, 12)])
def test_a_split_that_leaves_no_connection_for_transactions_is_refused(
    pool: int, read: int | None
) -> None:
    with pytest.raises(ValidationError, match="IPT_DATABASE_POOL_SIZE"):
        _settings(database_pool_size=pool, database_read_pool_size=read)
