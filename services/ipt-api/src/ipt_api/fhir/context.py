"""The one dependency of every /fhir route: the request and what it needs, on demand.

A FHIR route declares `ctx: FhirContextDep` and nothing else (its path parameters aside), so
FastAPI solves one dependency per request instead of five. The context checks the `Accept`
header (406) and the URL's resource type against the registry (404) before the route runs;
the caller, the store and the base URL are resolved only when the route asks for them, in the
order the route needs them: a route authorizes before it opens the store or reads anything.
The store's connection is the request's one transaction (`ipt_api.deps.request_connection`),
committed before the response is sent (`scope="function"`, docs/architecture.md
"Write path"). A read by id or version asks for `reads()` instead: a driver connection of
the read pool, without a SQLAlchemy connection around it (docs/architecture.md,
"Read path").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import Depends, Request

from ipt_api.deps import SAFE_METHODS, get_principal, public_base, request_connection, store_of
from ipt_api.errors import outage_log
from ipt_api.fhir.media import check_accept
from ipt_api.principal import Principal
from ipt_api.settings import ApiSettings
from ipt_core.db.read_pool import ReadPool
from ipt_core.fhir.errors import MethodNotAllowed, ResourceNotFound
from ipt_core.fhir.registry import REGISTRY
from ipt_core.fhir.search import SearchRunner, search_runner
from ipt_core.fhir.store import DriverReads, ResourceStore

__all__ = ["FhirContext", "FhirContextDep", "check_type", "fhir_context", "open_context"]

_SYSTEM_PATHS = frozenset({"metadata", "_history"})  # /fhir/metadata, /fhir/_history


class FhirContext:
    """One FHIR request: its settings and resource type now; caller, store and base on demand."""

    __slots__ = ("_base", "_driver_conn", "_stack", "_store", "request", "settings", "type")

    def __init__(self, request: Request, stack: AsyncExitStack) -> None:
        """Bind to `request`; `stack` closes the store's transaction when the route is done."""
        self.request = request
        self.settings: ApiSettings = request.app.state.settings
        self.type: str = request.path_params.get("type", "")
        self._stack = stack
        self._store: ResourceStore | None = None
        self._base: str | None = None
        self._driver_conn: Any = None

    async def principal(self) -> Principal:
        """The authenticated caller (verified once per request; the gate may have done it)."""
        return await get_principal(self.request, self.settings)

    async def store(self, *, atomic_write: bool = False) -> ResourceStore:
        """The resource store on this request's transaction, opened at the first call.

        `atomic_write`: the route's one write is atomic on its own (a `create`), so the
        connection stays in autocommit (ipt_api/deps.py, `request_connection`).
        """
        if self._store is None:
            connection = request_connection(self.request, atomic_write=atomic_write)
            conn = await self._stack.enter_async_context(connection)
            self._store = store_of(self.request, conn)
        return self._store

    async def reads(self) -> DriverReads:
        """Reads by id and version on a connection of the read pool, returned with the route.

        For a route that reads nothing else (`read`, `vread`): no transaction, no SQLAlchemy
        connection (ipt_core/db/read_pool.py).
        """
        return DriverReads(await self._driver())

    async def searcher(self) -> SearchRunner:
        """Where this request's search runs: a connection of the read pool for a GET, the
        request's transaction for a POST `_search` (ipt_core/fhir/search/_statements.py)."""
        if self.request.method in SAFE_METHODS:
            return SearchRunner.on_driver(await self._driver())
        return await search_runner((await self.store()).conn)

    async def _driver(self) -> Any:
        # One connection per request, however many times the route asks.
        if self._driver_conn is None:
            pool: ReadPool = self.request.app.state.read_pool
            self._driver_conn = driver = await pool.acquire()
            self._stack.callback(pool.release, driver)
            outage_log(self.request).recovered()
        return self._driver_conn

    async def writer(self, *, atomic_write: bool = False) -> tuple[ResourceStore, Principal]:
        """For a write: the transaction first (it records a refusal too), then the caller."""
        store = await self.store(atomic_write=atomic_write)
        return store, await self.principal()

    @property
    def base(self) -> str:
        """The absolute FHIR base URL (`https://host/fhir`); a forged `Host` is a 400."""
        if self._base is None:
            self._base = f"{public_base(self.request, self.settings)}/fhir"
        return self._base


def check_type(request: Request, resource_type: str) -> None:
    """Refuse a URL whose type this server does not serve: 405 on system paths, else 404."""
    if resource_type in REGISTRY:
        return
    if resource_type in _SYSTEM_PATHS:
        raise MethodNotAllowed(f"{request.method} is not supported on {request.url.path}")
    raise ResourceNotFound(f"Resource type {resource_type!r} is not supported")


def open_context(request: Request, stack: AsyncExitStack) -> FhirContext:
    """The request's context; refuses an unacceptable `Accept` (406) or unknown type (404).

    `stack` closes what the route opened (its transaction) when the caller exits it: the
    dependency below, or the dispatcher (ipt_api/fhir/dispatch.py), before the response.
    """
    check_accept(request)
    resource_type = request.path_params.get("type")
    if resource_type is not None:
        check_type(request, resource_type)
    return FhirContext(request, stack)


async def fhir_context(request: Request) -> AsyncIterator[FhirContext]:
    """The context as a dependency (routes are dispatched without it, ipt_api/fhir/dispatch)."""
    async with AsyncExitStack() as stack:
        yield open_context(request, stack)


FhirContextDep = Annotated[FhirContext, Depends(fhir_context, scope="function")]
