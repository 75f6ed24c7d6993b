"""The request gate: what every request must pass before any route sees it.

One ASGI middleware for every route (README, "Input limits"):

1. The URL's path and query hold no control characters (NUL and the other C0 characters but
   tab, CR, LF): they cannot be stored or searched, so they are a 400, not a database error.
2. A request that carries a body is authenticated first, before one byte of the body is read,
   so an anonymous client cannot make the server receive (or answer `100 Continue` to) an
   upload. The principal is kept for the route's `PrincipalDep`, which does not verify twice.
3. The body is limited to `IPT_MAX_BODY_BYTES`: a larger `Content-Length` is a 413 before
   reading; otherwise the bytes are counted as they stream in (Starlette's
   `RequestBodyLimitMiddleware`) and the read that passes the limit fails with a 413.
4. Every response carries `X-Content-Type-Options: nosniff` and, unless the route set its own,
   `Cache-Control: no-store` (answers hold patient data; shared caches must not keep them).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipt_api.json_input import CONTROL_CHARACTERS
from ipt_core.fhir.errors import FhirError, InvalidRequest, PayloadTooLarge

__all__ = ["Authenticate", "RenderError", "RequestGate", "declared_length"]

Authenticate = Callable[[Request], Awaitable[object]]
RenderError = Callable[[FhirError], ASGIApp]

_ENCODED_CONTROL = re.compile(rb"%(?:0[0-8bBcC]|1[0-9a-fA-F])")
_DOCS = ("/docs", "/redoc", "/openapi.json")  # the API's documentation and its assets


class RequestGate:
    """ASGI middleware: URL check, authentication before the body, body limit, headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        authenticate: Authenticate,
        render_error: RenderError,
    ) -> None:
        """Wrap `app`; `authenticate` raises a FhirError (401/403) for a bad caller."""
        self.app = RequestBodyLimitMiddleware(app, max_body_size=max_body_bytes)
        self.max_body_bytes = max_body_bytes
        self.authenticate = authenticate
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the request with an OperationOutcome, or pass it on with a counted body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(scope, send)
        try:
            _check_url(scope)
            declared = declared_length(scope)
            if declared != 0:
                await self.authenticate(Request(scope))
            if declared is not None and declared > self.max_body_bytes:
                raise PayloadTooLarge(f"The body is over the limit of {self.max_body_bytes} bytes")
        except FhirError as error:
            await self.render_error(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


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


def _with_security_headers(scope: Scope, send: Send) -> Send:
    docs = scope["path"].startswith(_DOCS)

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.setdefault("X-Content-Type-Options", "nosniff")
            if not docs:
                headers.setdefault("Cache-Control", "no-store")
        await send(message)

    return send_with_headers
