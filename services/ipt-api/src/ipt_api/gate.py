"""The request gate: what every request must pass before any route sees it.

Checked by the one outer ASGI layer (ipt_api/edge.py) for every route (README, "Input
limits"):

1. The URL's path and query hold no control characters (NUL and the other C0 characters but
   tab, CR, LF): they cannot be stored or searched, so they are a 400, not a database error.
2. A request that carries a body is authenticated first, before one byte of the body is read,
   so an anonymous client cannot make the server receive (or answer `100 Continue` to) an
   upload. The principal is kept for the route's `PrincipalDep`, which does not verify twice.
3. The body is limited to `IPT_MAX_BODY_BYTES`: a larger `Content-Length` is a 413 before
   reading; otherwise the bytes are counted as they stream in (`body_limit_exceeded`, checked
   by the edge's receive, ipt_api/disconnect.py) and the read that passes the limit fails
   with a 413.
4. Every response carries `X-Content-Type-Options: nosniff` and, unless the route set its own,
   `Cache-Control: no-store` (answers hold patient data; shared caches must not keep them).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message, Scope

from ipt_api.json_input import CONTROL_CHARACTERS
from ipt_core.fhir.errors import InvalidRequest, PayloadTooLarge

__all__ = [
    "Authenticate",
    "add_security_headers",
    "body_limit_exceeded",
    "check_request",
    "declared_length",
    "is_docs",
]

Authenticate = Callable[[Request], Awaitable[object]]

_ENCODED_CONTROL = re.compile(rb"%(?:0[0-8bBcC]|1[0-9a-fA-F])")
_DOCS = ("/docs", "/redoc", "/openapi.json")  # the API's documentation and its assets


async def check_request(scope: Scope, authenticate: Authenticate, max_body_bytes: int) -> None:
    """Raise the FhirError that refuses this request before any route sees it, if any."""
    _check_url(scope)
    declared = declared_length(scope)
    if declared != 0:
        await authenticate(Request(scope))
    if declared is not None and declared > max_body_bytes:
        raise PayloadTooLarge(f"The body is over the limit of {max_body_bytes} bytes")


def _check_url(scope: Scope) -> None:
    if CONTROL_CHARACTERS.search(scope["path"]) or _ENCODED_CONTROL.search(scope["query_string"]):
        raise InvalidRequest("The URL holds a control character (U+0000-U+001F)")


def declared_length(scope: Scope) -> int | None:
    """The body's declared length: 0 without a body, None when it is sent chunked."""
    length: int | None = 0
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
        if name == b"transfer-encoding":
            length = None
    return length


def body_limit_exceeded(max_body_bytes: int) -> HTTPException:
    """The error of the body read that passes the limit: a 413 (`too-long`) OperationOutcome.

    An HTTPException, as Starlette's body limit raised: FastAPI's body parsing (the domain
    API's models) passes it on to the handlers, where another error would become a 400.
    """
    return HTTPException(413, f"The body is over the limit of {max_body_bytes} bytes")


def is_docs(scope: Scope) -> bool:
    """Whether the request is for the API's documentation (its pages may be cached)."""
    path: str = scope["path"]
    return path.startswith(_DOCS)


def add_security_headers(start: Message, docs: bool) -> None:
    """Add the security headers to a response's `http.response.start` message."""
    headers = MutableHeaders(scope=start)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if not docs:
        headers.setdefault("Cache-Control", "no-store")
