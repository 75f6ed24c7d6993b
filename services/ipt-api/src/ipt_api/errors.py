"""Every error as an OperationOutcome with the right status, never a bare 500 with internals."""

from __future__ import annotations

import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from ipt_api.fhir.responses import json_response
from ipt_api.outcomes import operation_outcome
from ipt_core.fhir.errors import FhirError, Issue

__all__ = ["install_error_handlers"]

_log = logging.getLogger(__name__)

_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock, serialization failure
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
    app.add_exception_handler(DBAPIError, _transient_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)


async def _fhir_error(request: Request, error: FhirError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
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


async def _transient_error(request: Request, error: DBAPIError) -> Response:
    # A deadlock or serialization failure is resolved by retrying: say so, it is no crash.
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate not in _TRANSIENT_SQLSTATES:
        return await _unexpected_error(request, error)
    _log.warning("transient database conflict (%s) on %s", sqlstate, request.method)
    issue = Issue("transient", "A concurrent change conflicted with this request; retry it")
    return json_response(operation_outcome([issue]), 503, **{"Retry-After": "1"})


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
