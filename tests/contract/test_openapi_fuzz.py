"""Fuzzing: schemathesis generates requests from the app's own OpenAPI document, against the
API served by uvicorn (authentication disabled), and checks every answer: no 5xx, a
documented status and media type, a body that matches the documented schema.

Bounded for `make test` on a small machine: a few generated cases per operation, no
shrinking, each operation's first failure reported (README, "Input limits").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks
from schemathesis.core.result import Ok
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from tests.support.api import api_settings, served

# IPT_FUZZ_EXAMPLES raises the budget for a deeper run by hand (e.g. 200).
EXAMPLES = int(os.environ.get("IPT_FUZZ_EXAMPLES", "8"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
# Streams never end by themselves: their framing is tested in test_events_feed.
SKIPPED = {("GET", "/ipt/v1/events/stream")}


@pytest.fixture
def served_api(db: AsyncEngine, database_url: str) -> Iterator[tuple[str, dict[str, Any]]]:
    settings = api_settings(database_url=database_url.replace("+asyncpg", ""))
    app = create_app(settings)
    with served(app) as port:
        yield f"http://127.0.0.1:{port}", app.openapi()


def test_generated_requests_get_documented_answers(
    served_api: tuple[str, dict[str, Any]],
) -> None:
    base_url, document = served_api
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        operations += 1
        failure = _fuzz(operation, base_url)
        if failure:
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    assert operations > 50
    assert not failures, f"{len(failures)} operations failed:\n" + "\n\n".join(failures)


def _fuzz(operation: Any, base_url: str) -> str | None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=operation.as_strategy().map(_no_long_poll))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

    try:
        run()
    except (Exception, BaseExceptionGroup) as error:  # report every failing operation
        return _first_lines(str(error))
    return None


def _no_long_poll(case: Any) -> Any:
    # `wait` holds a request open for up to 30 s when no event comes: keep the run short.
    if isinstance(case.query, dict) and "wait" in case.query:
        case.query["wait"] = 0
    return case


def _first_lines(text: str, count: int = 25) -> str:
    return "\n".join(text.splitlines()[:count])
