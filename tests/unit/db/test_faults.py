"""Database trouble told apart from bugs, wherever in the exception chain it surfaces."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy.exc

from ipt_core.db.faults import DatabaseFault, OutageLog, database_fault


def wrapped(error: Exception) -> sqlalchemy.exc.DBAPIError:
    """The error as SQLAlchemy raises it: a DBAPIError whose `orig` is the driver's error."""
    return sqlalchemy.exc.DBAPIError("SELECT 1", None, error)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (asyncpg.exceptions.AdminShutdownError("shutting down"), "unavailable"),
        (asyncpg.exceptions.CannotConnectNowError("starting up"), "unavailable"),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation"), "unavailable"),
        (asyncpg.exceptions.TooManyConnectionsError("too many clients"), "overloaded"),
        (asyncpg.exceptions.ReadOnlySQLTransactionError("read-only"), "read-only"),
        (asyncpg.exceptions.QueryCanceledError("statement timeout"), "timeout"),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock"), "conflict"),
        (asyncpg.exceptions.SerializationError("serialization"), "conflict"),
    ],
)
def test_server_states_are_recognised_raw_and_wrapped(error: Exception, kind: str) -> None:
    assert database_fault(error) is not None
    assert database_fault(error) == database_fault(wrapped(error))
    fault = database_fault(wrapped(error))
    assert fault is not None
    assert fault.kind == kind


def test_a_refused_connection_is_the_database_being_unavailable() -> None:
    fault = database_fault(ConnectionRefusedError(111, "Connection refused"))
    assert fault == DatabaseFault("unavailable", connection_lost=True)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        OSError(113, "No route to host"),
        TimeoutError("connect timed out"),
    ],
)
def test_network_failures_are_the_database_being_unavailable(error: Exception) -> None:
    fault = database_fault(error)
    assert fault is not None
    assert fault.kind == "unavailable"


async def test_a_server_whose_socket_file_is_gone_is_unavailable(tmp_path: Path) -> None:
    # The embedded server removes its Unix socket while it is down or restarting.
    with pytest.raises(FileNotFoundError) as raised:
        await asyncpg.connect(host=str(tmp_path), port=5432, user="postgres", timeout=5)
    assert database_fault(raised.value) == DatabaseFault("unavailable", connection_lost=True)


def test_pool_exhaustion_is_overload() -> None:
    fault = database_fault(sqlalchemy.exc.TimeoutError("QueuePool limit reached"))
    assert fault is not None
    assert fault.kind == "overloaded"


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),
        FileNotFoundError(2, "No such file", "ipt.toml"),  # an OSError, but no outage
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        wrapped(asyncpg.exceptions.UndefinedColumnError("no such column")),
    ],
)
def test_bugs_and_refused_data_are_not_database_trouble(error: Exception) -> None:
    assert database_fault(error) is None


def test_a_fault_is_described_without_its_message() -> None:
    error = asyncpg.exceptions.QueryCanceledError("canceling statement: Patient Smith")
    fault = database_fault(error)
    assert fault is not None
    assert "Smith" not in fault.describe()
    assert fault.describe() == "timeout sqlstate=57014"


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    outage = OutageLog(logging.getLogger("test.outage"), "database", quiet_s=0)
    fault = DatabaseFault("unavailable", connection_lost=True)
    outage.recovered()  # nothing to end
    for _ in range(500):
        outage.failed(fault)
    assert outage.down
    outage.recovered()
    outage.recovered()
    outage.failed(fault)  # a second outage
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert messages[0].startswith("database unavailable (unavailable connection lost)")
    assert "500 failures" in messages[1]
    assert messages[2].startswith("database unavailable")


def test_a_flapping_database_is_one_outage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    outage = OutageLog(logging.getLogger("test.outage"), "database", quiet_s=60)
    fault = DatabaseFault("unavailable", connection_lost=True)
    for _ in range(20):  # fails, answers, fails again... within a minute
        outage.failed(fault)
        outage.recovered()
    assert not outage.down
    assert len(caplog.records) == 2  # the first start and its end
