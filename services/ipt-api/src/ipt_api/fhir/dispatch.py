"""The FHIR interactions dispatched without the framework's per-request routing work.

Every /fhir interaction is still declared once, as a `FhirOperation` added to the FastAPI
router (ipt_api/fhir/routes.py), and the OpenAPI document comes from those routes as
before. What changes is how a request reaches one: FastAPI 0.165 walks each included
router twice per request (`_IncludedRouter.matches`, then `_match`), wraps the endpoint in
four closures and an anyio cancel scope for the `yield` dependency, and solves the context
dependency through its generic machinery: a third of a read's CPU (bench/PROFILE.md,
finding 1).

`FhirDispatch` sits in front of the exception middleware and the router. It matches a
request against ONE regular expression per method, compiled from the app's own routes in
routing order (each route's own pattern, so what it matches is exactly what Starlette would
match, first match wins). When the first route the request fully matches is a FHIR
operation, the dispatcher builds the `FhirContext` itself (`open_context`: the same Accept
and type checks as the dependency) and calls the operation's endpoint; the store's
transaction closes before the response is sent, as with `scope="function"`. An error raised
until then is answered by the app's handler for it (ipt_api/errors.py), looked up as the
exception middleware looks it up; one without a handler goes on to the server-error handler
(a 500 OperationOutcome), as before. Every other request (another route matched first, only
a partial match: 405, no match: 404, a `root_path`) goes to `app`, the exception middleware
and router, as before. A `HEAD` request is matched as a `GET` (FastAPI's routes take no
`HEAD`, which answered 405): the same checks, authorization and audit as the read, and
uvicorn sends the status and headers without the body.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from starlette._utils import is_async_callable
from starlette.convertors import StringConvertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ipt_api.fhir.context import FhirContext, fhir_context, open_context
from ipt_api.fhir.routes import Route

__all__ = ["FhirDispatch"]

_NAMED_GROUP = re.compile(r"\(\?P<\w+>")
_Handler = Callable[[Request, Exception], Awaitable[Response]]


@dataclass(frozen=True)
class _Operation:
    """A FHIR operation's route: the endpoint and the path parameters it takes."""

    route: APIRoute
    endpoint: Route
    regex: re.Pattern[str]
    arguments: tuple[str, ...]  # path parameters passed to the endpoint (`type` is ctx's)


class FhirDispatch:
    """ASGI app: FHIR operations straight to their endpoints, everything else to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[BaseRoute],
        router: object,
        handlers: Mapping[Any, Any],
        overrides: Mapping[Any, Any],
    ) -> None:
        """Fall back to `app`; `routes` are the app's routes in routing order (read lazily).

        `handlers` are the exception middleware's: by exception class or HTTP status. While
        the app's dependency `overrides` hold any (tests), every request goes to the router.
        """
        self.app = app
        self._routes = routes
        self._router = router
        self._overrides = overrides
        assert all(map(is_async_callable, handlers.values())), "the app's handlers are async"
        self._by_status: dict[int, _Handler] = {}
        self._by_class: dict[type, _Handler] = {}
        for key, handler in handlers.items():
            if isinstance(key, int):
                self._by_status[key] = handler
            else:
                self._by_class[key] = handler
        self._tables: dict[str, tuple[re.Pattern[str], dict[str, _Operation | None]]] | None
        self._tables = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a FHIR operation directly, or pass the request on."""
        if scope["type"] == "http" and not scope.get("root_path") and not self._overrides:
            if self._tables is None:
                self._tables = _compile(self._routes)
            # HEAD is answered as GET: the server sends the head only (RFC 9110, 9.3.2).
            method = scope["method"]
            table = self._tables.get("GET" if method == "HEAD" else method)
            if table is not None:
                pattern, operations = table
                found = pattern.match(scope["path"])
                if found is not None and (op := operations[found.lastgroup or ""]) is not None:
                    await self._serve(op, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, op: _Operation, scope: Scope, receive: Receive, send: Send) -> None:
        params = op.regex.match(scope["path"]).groupdict()  # type: ignore[union-attr]
        # What the router would have put in the scope: the span is named from "route".
        scope["path_params"] = params
        scope["route"] = op.route
        scope["endpoint"] = op.endpoint
        scope.setdefault("router", self._router)
        request = Request(scope, receive, send)
        try:
            async with AsyncExitStack() as stack:  # closed (committed) before the response
                ctx: FhirContext = open_context(request, stack)
                response = await op.endpoint(ctx, *[params[name] for name in op.arguments])
        except Exception as error:
            response = await self._handle(request, error)
        await response(scope, receive, send)

    async def _handle(self, request: Request, error: Exception) -> Response:
        """The app's answer to `error` (Starlette's lookup: status, then the class's MRO)."""
        handler = None
        if isinstance(error, HTTPException):
            handler = self._by_status.get(error.status_code)
        if handler is None:
            handler = next(
                (self._by_class[c] for c in type(error).__mro__ if c in self._by_class), None
            )
        if handler is None:
            raise error  # unexpected: the server-error handler answers (500) and logs it
        response = await handler(request, error)
        error.__traceback__ = None  # as Starlette: a reused exception would keep growing it
        return response


def _compile(
    routes: Sequence[BaseRoute],
) -> dict[str, tuple[re.Pattern[str], dict[str, _Operation | None]]]:
    """Per method: one pattern of every route up to the last FHIR operation, in order."""
    contexts = list(iter_route_contexts(routes))
    last = max((i for i, rc in enumerate(contexts) if _operation(rc) is not None), default=-1)
    alternatives: dict[str, list[str]] = {}
    operations: dict[str, dict[str, _Operation | None]] = {}
    for i, rc in enumerate(contexts[: last + 1]):
        regex: re.Pattern[str] | None = getattr(rc, "path_regex", None)
        if regex is None:
            # A route of another kind (a Host …) could match anything: the table stops here,
            # the requests it would have decided go to the router.
            break
        op = _operation(rc)
        group = f"r{i}"
        for method in rc.methods or _ALL_METHODS:  # no methods (a Mount): all of them
            alternatives.setdefault(method, []).append(
                f"(?P<{group}>{_NAMED_GROUP.sub('(?:', regex.pattern)})"
            )
            operations.setdefault(method, {})[group] = op
    return {
        method: (re.compile("|".join(patterns)), operations[method])
        for method, patterns in alternatives.items()
    }


_ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


def _operation(rc: Any) -> _Operation | None:
    """The route as a dispatchable FHIR operation, or None (it goes through the router)."""
    route = rc.original_route
    if not isinstance(route, APIRoute) or route.path != rc.path:
        return None
    if not inspect.iscoroutinefunction(route.endpoint):
        return None
    parameters = list(inspect.signature(route.endpoint).parameters.values())
    if not parameters or not _takes_context(
        getattr(rc, "dependant", route.dependant), parameters[0].name
    ):
        return None
    arguments = tuple(p.name for p in parameters[1:])
    convertors = rc.param_convertors
    if set(arguments) - set(convertors) or not all(
        isinstance(c, StringConvertor) for c in convertors.values()
    ):
        return None
    if set(convertors) - set(arguments) - {"type"}:
        return None
    return _Operation(route, route.endpoint, rc.path_regex, arguments)


def _takes_context(dependant: Any, name: str) -> bool:
    """Whether the endpoint's first parameter is the FHIR context and its only dependency.

    `dependant` is the route's as included (with the including routers' dependencies).
    """
    if dependant.query_params or dependant.header_params or dependant.cookie_params:
        return False
    if dependant.body_params or len(dependant.dependencies) != 1:
        return False
    dependency = dependant.dependencies[0]
    return dependency.name == name and dependency.call is fhir_context
