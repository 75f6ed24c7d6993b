"""The edge: the one ASGI layer in front of every route, doing in order what each request needs.

1. its server span and HTTP metrics (ipt_api/http_telemetry.py);
2. its audit trail, which also records the gate's refusals (ipt_api/audit/middleware.py);
3. the request gate: URL check, authentication before the body, 413, security headers
   (ipt_api/gate.py), the body counted against the limit as it streams in (by the
   disconnect watch's receive, ipt_api/disconnect.py);
4. the disconnect watch, which cancels the request when the client leaves
   (ipt_api/disconnect.py).

One pure-ASGI layer instead of four middlewares (and the OpenTelemetry instrumentation's
own): each layer was a call, a closure around `send` and a frame on every request
(bench/PROFILE.md, finding 1).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipt_api.audit import queue_unrecorded, request_trail
from ipt_api.audit.trail import open_trail
from ipt_api.disconnect import Exchange, serve_until_disconnect
from ipt_api.errors import CLIENT_CLOSED_REQUEST
from ipt_api.gate import Authenticate, add_security_headers, check_request, declared_length, is_docs
from ipt_api.http_telemetry import HttpTelemetry, RequestRecord
from ipt_core.fhir.errors import FhirError

__all__ = ["Edge", "RenderError"]

RenderError = Callable[[FhirError], ASGIApp]


class Edge:
    """ASGI middleware: telemetry, audit trail, gate and disconnect watch, in one layer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        telemetry: HttpTelemetry,
        max_body_bytes: int,
        authenticate: Authenticate,
        render_error: RenderError,
    ) -> None:
        """Wrap `app`; `authenticate` raises a FhirError (401/403) for a bad caller."""
        self.app = app
        self.telemetry = telemetry
        self.max_body_bytes = max_body_bytes
        self.authenticate = authenticate
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request through every check, inside its span and audit trail."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trail = request_trail(scope)
        with self.telemetry.request(scope) as record:
            try:
                with open_trail(trail) if trail is not None else nullcontext():
                    await self._serve(scope, receive, send, record)
            finally:
                if trail is not None:
                    queue_unrecorded(scope, trail, record.status)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, record: RequestRecord
    ) -> None:
        docs = is_docs(scope)

        def on_start(message: Message) -> None:
            record.status = message["status"]
            add_security_headers(message, docs)

        try:
            await check_request(scope, self.authenticate, self.max_body_bytes)
        except FhirError as error:
            await self.render_error(error)(scope, receive, _starting(on_start, send))
            return
        # The exchange counts the body against the limit and sees the response start: no
        # further wrapper around `receive` or `send` (bench/PROFILE.md, finding 1).
        exchange = Exchange(
            receive,
            send,
            has_body=declared_length(scope) != 0,
            max_body_bytes=self.max_body_bytes,
            on_start=on_start,
        )
        await serve_until_disconnect(self.app, scope, exchange)
        if exchange.cancelled:  # its client left before the answer was complete
            record.status = CLIENT_CLOSED_REQUEST  # not a server failure (ipt_api/errors.py)


def _starting(on_start: Callable[[Message], None], send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            on_start(message)
        await send(message)

    return sending
