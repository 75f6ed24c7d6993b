"""Every error as an OperationOutcome with the right status, never a bare 500 with internals.

Database trouble (a restart, a failover, overload, a statement timeout) is an expected
condition: it answers 503 with `Retry-After`, and is logged once per outage, not per request
(`ipt_core.db.faults`). A write whose COMMIT lost its connection answers 503 saying the write
may have been stored (`CommitOutcomeUnknown`, raised by `ipt_api.deps`).
"""

from __future__ import annotations

import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ipt_api.fhir.responses import json_response
from ipt_api.outcomes import operation_outcome
from ipt_core.db.faults import (
    DATABASE_ERRORS,
    DatabaseFault,
    FaultKind,
    OutageLog,
    database_fault,
)
from ipt_core.fhir.errors import FhirError, Issue, ServiceUnavailable

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "database_unavailable",
    "install_error_handlers",
    "outage_log",
    "render_error",
    "status_of",
]

_log = logging.getLogger(__name__)

_UNAVAILABLE: dict[FaultKind, tuple[str, int]] = {  # message, Retry-After seconds
    "unavailable": ("The database is unavailable (restarting or unreachable)", 2),
    "overloaded": ("The database is overloaded (no connection is free)", 2),
    "read-only": ("The database is read-only (a failover is in progress)", 5),
    "timeout": ("The database did not answer in time (statement timeout)", 5),
    "conflict": ("A concurrent change conflicted with this request", 1),
}
# Values PostgreSQL cannot hold: out-of-range numbers, NUL or unconvertible characters, rows
# over an index's size limit. Input checks refuse these first; this is the backstop, so a
# value that slips through is the client's 400, never a 500 (README, "Input limits").
_UNSTORABLE_SQLSTATES = frozenset({"22003", "22021", "22P05", "54000"})
# The client closed its connection before its request's body was read: nobody is left to
# answer, and nothing went wrong on this side. nginx's name for it, so the access log, the
# metrics and the audit record say what happened.
CLIENT_CLOSED_REQUEST = 499
_HTTP_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "processing",
}


def install_error_handlers(app: FastAPI) -> None:
    """Render FHIR errors, framework errors and unexpected failures as OperationOutcome."""
    app.add_exception_handler(FhirError, _fhir_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, _client_gone)  # type: ignore[arg-type]
    for database_error in DATABASE_ERRORS:  # each checked by `database_fault`
        app.add_exception_handler(database_error, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)


def outage_log(request: Request) -> OutageLog:
    """The app's log of database outages (one line when one starts, one when it ends)."""
    log: OutageLog | None = getattr(request.app.state, "database_outage", None)
    if log is None:
        log = request.app.state.database_outage = OutageLog(_log, "database")
    return log


def database_unavailable(fault: DatabaseFault) -> ServiceUnavailable:
    """The 503 a client gets for `fault`: nothing was changed, retry after the delay."""
    message, retry_after_s = _UNAVAILABLE[fault.kind]
    return ServiceUnavailable(
        f"{message}; nothing was changed: retry after the Retry-After delay",
        retry_after_s=retry_after_s,
    )


def status_of(error: Exception) -> int:
    """The HTTP status the handlers below answer `error` with."""
    if isinstance(error, FhirError):
        return error.status
    if isinstance(error, HTTPException):
        return error.status_code
    if isinstance(error, RequestValidationError):
        return 400
    if isinstance(error, ClientDisconnect):
        return CLIENT_CLOSED_REQUEST
    fault = database_fault(error) if isinstance(error, DATABASE_ERRORS) else None
    if fault is not None:
        return database_unavailable(fault).status
    return 500


async def _fhir_error(request: Request, error: FhirError) -> Response:
    if isinstance(error, ServiceUnavailable):
        fault = database_fault(error.__cause__) if error.__cause__ else None
        outage_log(request).failed(fault or type(error).__name__)
    return render_error(error)


def render_error(error: FhirError) -> Response:
    """The OperationOutcome response of `error` (also used before routing, by the gate)."""
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    return json_response(operation_outcome(error.issues), error.status, **headers)


async def _http_error(request: Request, error: HTTPException) -> Response:
    code = _HTTP_CODES.get(error.status_code, "processing")
    message = error.detail if isinstance(error.detail, str) else "Request failed"
    if error.status_code == 404:
        message = f"No such endpoint: {request.method} {request.url.path}"
    headers = dict(error.headers or {})
    return json_response(operation_outcome([Issue(code, message)]), error.status_code, **headers)


async def _validation_error(request: Request, error: RequestValidationError) -> Response:
    issues = [
        Issue(
            "invalid",
            str(problem.get("msg", "Invalid value")),
            (".".join(str(step) for step in problem.get("loc", ())),),
        )
        for problem in error.errors()
    ]
    return json_response(operation_outcome(issues), 400)


async def _database_error(request: Request, error: Exception) -> Response:
    if getattr(getattr(error, "orig", None), "sqlstate", None) in _UNSTORABLE_SQLSTATES:
        _log.warning("unstorable value on %s", request.method)
        issue = Issue(
            "value", "A value in the request is too large or holds characters that cannot be stored"
        )
        return json_response(operation_outcome([issue]), 400)
    fault = database_fault(error)
    if fault is None:
        return await _unexpected_error(request, error)
    if fault.kind == "conflict":  # a deadlock or serialization failure: retrying resolves it
        _log.warning("transient database conflict (%s) on %s", fault.sqlstate, request.method)
    else:
        outage_log(request).failed(fault)
    unavailable = database_unavailable(fault)
    headers = {"Retry-After": str(unavailable.retry_after_s)}
    return json_response(operation_outcome(unavailable.issues), unavailable.status, **headers)


async def _client_gone(request: Request, error: ClientDisconnect) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)  # the server drops it: no one to read it


async def _unexpected_error(request: Request, error: Exception) -> Response:
    # Log type, route template and stack only: messages and URLs can carry patient data.
    route = request.scope.get("route")
    _log.error(
        "unexpected error %s on %s %s\n%s",
        type(error).__name__,
        request.method,
        getattr(route, "path", "?"),
        "".join(traceback.format_tb(error.__traceback__)),
    )
    issue = Issue("exception", "The server failed to process the request; it has been logged")
    return json_response(operation_outcome([issue]), 500)
