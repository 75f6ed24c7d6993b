"""The request gate: what every request must pass before any route sees it.

Checked by the one outer ASGI layer (ipt_api/edge.py) for every route (README, "Input
limits"):

1. The URL's path and query hold no control characters (NUL and the other C0 characters but
   tab, CR, LF): they cannot be stored or searched, so they are a 400, not a database error.
2. A request that carries a body is authenticated first, before one byte of the body is read,
   so an anonymous client cannot make the server receive (or answer `100 Continue` to) an
   upload. The principal is kept for the route's `PrincipalDep`, which does not verify twice.
3. The body is limited to `IPT_MAX_BODY_BYTES`: a larger `Content-Length` is a 413 before
   reading; otherwise the bytes are counted as they stream in (Starlette's
   `RequestBodyLimitMiddleware`, installed by the edge) and the read that passes the limit
   fails with a 413.
4. Every response carries `X-Content-Type-Options: nosniff` and, unless the route set its own,
   `Cache-Control: no-store` (answers hold patient data; shared caches must not keep them).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import Message, Scope, Send

from ipt_api.json_input import CONTROL_CHARACTERS
from ipt_core.fhir.errors import InvalidRequest, PayloadTooLarge

__all__ = ["Authenticate", "check_request", "declared_length", "with_security_headers"]

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


def with_security_headers(scope: Scope, send: Send) -> Send:
    """`send`, adding the security headers to the response's start."""
    docs = scope["path"].startswith(_DOCS)

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.setdefault("X-Content-Type-Options", "nosniff")
            if not docs:
                headers.setdefault("Cache-Control", "no-store")
        await send(message)

    return send_with_headers
