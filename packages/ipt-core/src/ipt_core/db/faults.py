"""Database trouble told apart from bugs: what a failure means, and one log line per outage.

Every process meets the same failures when PostgreSQL restarts, fails over or is overloaded:
a refused connection, a connection dropped mid-statement, `admin_shutdown`, `too many
connections`, a read-only standby, a statement timeout. They are expected conditions, to be
retried, never crashes. `database_fault` recognises them wherever they surface (raw `OSError`
at connect, asyncpg exceptions, or SQLAlchemy's wrappers) by walking the exception chain;
`OutageLog` turns a stream of such failures into one line when the outage starts and one when
it ends (docs/architecture.md, "When the database or a process fails").
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from dataclasses import dataclass
from typing import Final, Literal

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc
from opentelemetry import metrics

from ipt_core.db.lending import PoolExhausted

__all__ = ["DATABASE_ERRORS", "DatabaseFault", "FaultKind", "OutageLog", "database_fault"]

# Where database trouble can surface: SQLAlchemy's wrappers, the driver's own exceptions (at
# connect), and the socket's. Handlers catch these and ask `database_fault`; None is a bug.
DATABASE_ERRORS: Final[tuple[type[Exception], ...]] = (
    sqlalchemy.exc.DBAPIError,
    sqlalchemy.exc.TimeoutError,
    PoolExhausted,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)

FaultKind = Literal["unavailable", "overloaded", "read-only", "timeout", "conflict"]

# SQLSTATE -> kind. Class 08 (connection exception) is matched by its prefix below.
_SQLSTATES: Final[dict[str, FaultKind]] = {
    "57P01": "unavailable",  # admin_shutdown: the server is stopping or the session was ended
    "57P02": "unavailable",  # crash_shutdown
    "57P03": "unavailable",  # cannot_connect_now: starting up or in recovery
    "57P05": "unavailable",  # idle_session_timeout
    "53300": "overloaded",  # too_many_connections
    "53400": "overloaded",  # configuration_limit_exceeded
    "53200": "overloaded",  # out_of_memory
    "53100": "overloaded",  # disk_full
    "25006": "read-only",  # read_only_sql_transaction: a standby after failover
    "57014": "timeout",  # query_canceled: statement_timeout (or a cancel request)
    "40001": "conflict",  # serialization_failure
    "40P01": "conflict",  # deadlock_detected
}
_MAX_CHAIN: Final = 12
# Labels: the fault's kind and the process part that met it; never a message or a query.
_faults = metrics.get_meter("ipt_core.db").create_counter(
    "ipt.db.faults", description="Database failures met (restarts, overload, timeouts) by kind"
)
_NETWORK_ERRNOS: Final = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.ETIMEDOUT}
)


@dataclass(frozen=True)
class DatabaseFault:
    """A failure caused by the database's state, not by the request or a bug.

    Attributes:
        kind: what the client and the operator are told.
        sqlstate: the server's code, when the server sent one.
        connection_lost: the connection broke (the statement's fate may be unknown).
    """

    kind: FaultKind
    sqlstate: str | None = None
    connection_lost: bool = False

    def describe(self) -> str:
        """A log-safe summary: the kind and code only, never a message (it may quote data)."""
        return f"{self.kind}{f' sqlstate={self.sqlstate}' if self.sqlstate else ''}" + (
            " connection lost" if self.connection_lost else ""
        )


def database_fault(error: BaseException) -> DatabaseFault | None:
    """Return what `error` says about the database, or None when it is not database trouble."""
    lost = isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated
    for link in _chain(error):
        sqlstate = getattr(link, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate:
            if sqlstate.startswith("08"):
                return DatabaseFault("unavailable", sqlstate, connection_lost=True)
            if sqlstate in _SQLSTATES:
                return DatabaseFault(_SQLSTATES[sqlstate], sqlstate, connection_lost=lost)
        if isinstance(link, sqlalchemy.exc.TimeoutError | PoolExhausted):  # none came free
            return DatabaseFault("overloaded")
        if _is_network_failure(link) or _is_closed_connection(link):
            return DatabaseFault("unavailable", connection_lost=True)
    return DatabaseFault("unavailable", connection_lost=True) if lost else None


def _chain(error: BaseException) -> list[BaseException]:
    """`error`, the driver error it wraps, and their causes, most specific last."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < _MAX_CHAIN:
        seen.append(current)
        wrapped = getattr(current, "orig", None)
        current = (
            wrapped
            if isinstance(wrapped, BaseException)
            else (current.__cause__ or current.__context__)
        )
    return seen


def _is_network_failure(error: BaseException) -> bool:
    # Only the socket's failures: a missing file (also an OSError) is a bug, not an outage.
    return (
        isinstance(error, ConnectionError | TimeoutError | socket.gaierror)
        or (isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS)
        or _is_missing_socket(error)
    )


def _is_missing_socket(error: BaseException) -> bool:
    # A server on a Unix socket (the embedded one) removes its socket file while it is down
    # or restarting, so connecting fails with ENOENT; unlike a file a bug failed to open,
    # a `connect()` names no file.
    return isinstance(error, FileNotFoundError) and error.filename is None


def _is_closed_connection(error: BaseException) -> bool:
    # "connection is closed" carries no SQLSTATE, neither as asyncpg's InterfaceError nor as
    # SQLAlchemy's adapted copy of it (a different class of the same name).
    return type(error).__name__ in {"ConnectionDoesNotExistError", "InternalClientError"} or (
        type(error).__name__ == "InterfaceError" and "closed" in str(error)
    )


class OutageLog:
    """Logs one warning when a dependency starts failing and one line when it works again.

    Failures in between are counted, not logged: an outage of a minute under load must not
    write thousands of identical lines (or fill the disk of the node it runs on). A database
    that flaps (fails, answers, fails again) is one outage for `quiet_s`: its short gaps are
    not logged again until that long after the last logged start.
    """

    def __init__(self, logger: logging.Logger, what: str, *, quiet_s: float = 30.0) -> None:
        """Log through `logger`, naming the dependency `what` (e.g. "database")."""
        self._logger = logger
        self._what = what
        self._quiet_s = quiet_s
        self._since: float | None = None
        self._logged_at: float | None = None  # when the last start line was written
        self._logged = False  # the current outage's start was logged
        self._failures = 0

    @property
    def down(self) -> bool:
        """Whether an outage is in progress."""
        return self._since is not None

    def failed(self, fault: DatabaseFault | str) -> None:
        """Count a failure (metric `ipt.db.faults`); only the first of an outage is logged."""
        self._failures += 1
        kind = fault.kind if isinstance(fault, DatabaseFault) else "other"
        _faults.add(1, {"kind": kind, "where": self._what})
        if self._since is not None:
            return
        now = time.monotonic()
        self._since = now
        self._logged = self._logged_at is None or now - self._logged_at >= self._quiet_s
        if not self._logged:
            return  # flapping: the outage logged moments ago covers this one
        self._logged_at = now
        detail = fault.describe() if isinstance(fault, DatabaseFault) else fault
        self._logger.warning("%s unavailable (%s); retrying", self._what, detail)

    def recovered(self) -> None:
        """Note a success; logs the end of the outage, if its start was logged."""
        if self._since is None:
            return
        if self._logged:
            self._logger.warning(
                "%s available again after %.1f s (%d failures during the outage)",
                self._what,
                time.monotonic() - self._since,
                self._failures,
            )
            self._failures = 0
        self._since = None
