"""A client that closes its connection before its request's body is read is not a server error.

uvicorn tells the app `http.disconnect` instead of the rest of the body: the write's
transaction is rolled back, the audit record says 499 (client closed request, answered to
nobody), and no "unexpected error" is logged. (A client gone later, once the disconnect watch
runs, has its request cancelled instead: tests/integration/test_driver_transaction.py.)
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import ClientDisconnect

from ipt_api.app import create_app
from ipt_api.audit.trail import Access, AuditTrail
from ipt_api.deps import _record_failure
from tests.support.api import api_settings, served
from tests.support.database import query_scalar
from tests.support.waiting import poll_until

_HALF_A_REQUEST = (
    b"POST /fhir/Patient HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Content-Type: application/fhir+json\r\n"
    b"Content-Length: 400\r\n"
    b"\r\n"
    b'{"resourceType": "Patient", "name": [{"family": '
)


async def test_a_client_gone_mid_body_is_a_499_not_a_500(
    db: AsyncEngine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = api_settings(database_url=database_url.replace("+asyncpg", ""))
    with served(create_app(settings)) as port, caplog.at_level(logging.INFO):
        async with httpx.AsyncClient() as http:  # a pooled connection and the path warm
            created = await http.post(
                f"http://127.0.0.1:{port}/fhir/Patient",
                json={"resourceType": "Patient"},
                headers={"Content-Type": "application/fhir+json"},
            )
            assert created.status_code == 201
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_HALF_A_REQUEST)
        await writer.drain()
        # Gone at once: before the disconnect watch starts, the body's read meets the close.
        writer.close()
        await writer.wait_closed()
        creates = "SELECT count(*) FROM audit_event WHERE action = 'C'"
        await poll_until(
            lambda: query_scalar(db, creates), until=lambda n: n == 2, within_s=10, what="audit"
        )
        await asyncio.sleep(0.2)  # anything the request still logs
    statuses = "SELECT array_agg(outcome_status) FROM audit_event WHERE action = 'C'"
    assert sorted(await query_scalar(db, statuses)) == [201, 499]
    assert await query_scalar(db, "SELECT count(*) FROM resource") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_failure_being_recorded_is_recorded_even_if_its_request_is_cancelled(
    db: AsyncEngine,
) -> None:
    # The disconnect watch cancels the request of a client that left; when that happens while
    # the request's failure is being recorded (here: held up by a lock on the audit table),
    # the record, already taken from the trail, is still written.
    trail = AuditTrail(source_address=None, method="POST", fallback_type="Patient")
    trail.note(Access("create", "Patient"))
    async with db.connect() as blocker:
        await blocker.execute(text("LOCK TABLE audit_event IN EXCLUSIVE MODE"))
        recording = asyncio.create_task(_record_failure(db, trail, ClientDisconnect()))
        await asyncio.sleep(0.2)  # its insert waits for the lock
        recording.cancel()
        await asyncio.sleep(0.1)
        await blocker.rollback()
    with pytest.raises(asyncio.CancelledError):
        await recording  # the cancellation goes on, once the record is written
    failed = "SELECT count(*) FROM audit_event WHERE action = 'C' AND outcome_status = 499"
    assert await query_scalar(db, failed) == 1
    assert trail.pending(499) == []  # taken once: nothing left to record twice
