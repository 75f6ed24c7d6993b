"""The one logging setup: JSON lines, no access log, no exception messages."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from uvicorn.config import LOGGING_CONFIG

from ipt_core.logs import setup_logging

SECRET_VALUE = "urn:mrn|MRN-LOGTEST-9931"


class Stderr:
    """What the JSON handler wrote to stderr (created during the test, so it writes to capsys)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Stderr]:
    """Root logging restored afterwards; what the JSON handler writes."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    access = logging.getLogger("uvicorn.access")
    saved_access = (access.handlers[:], access.propagate, access.disabled)
    root.handlers[:] = [h for h in root.handlers if type(h) is not logging.StreamHandler]
    yield Stderr(capsys)
    root.handlers[:], root.level = saved
    access.handlers[:], access.propagate, access.disabled = saved_access


def test_uvicorn_access_log_is_off_even_after_uvicorn_configured_it(stderr: Stderr) -> None:
    logging.config.dictConfig(LOGGING_CONFIG)  # what `uvicorn … --factory` does first
    setup_logging()
    setup_logging()  # idempotent
    access = logging.getLogger("uvicorn.access")
    assert not access.hasHandlers()  # uvicorn writes access lines only when it has some
    access.info('%s - "GET /fhir/Patient?identifier=%s HTTP/1.1" 200', "1.2.3.4", SECRET_VALUE)
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    output = stderr.getvalue()
    assert SECRET_VALUE not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["message"] for line in lines] == ["Application startup complete."]
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_ipt_json_handler", False)]
    assert len(ours) == 1


def test_exception_messages_never_reach_the_log(stderr: Stderr) -> None:
    setup_logging()
    try:
        raise ValueError(f"duplicate key value violates constraint: {SECRET_VALUE}")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    output = stderr.getvalue()
    assert SECRET_VALUE not in output
    record = json.loads(output.splitlines()[-1])
    assert record["exc_info"].startswith("builtins.ValueError\n")
    assert "test_logs.py" in record["exc_info"]  # the stack is still there


def test_httpx_request_lines_are_quiet(stderr: Stderr) -> None:
    setup_logging()
    logging.getLogger("httpx").info("HTTP Request: POST https://u:p@h/?identifier=%s", SECRET_VALUE)
    assert SECRET_VALUE not in stderr.getvalue()
