"""Dependencies of the routes, declared once as `Annotated` aliases."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_api.audit.trail import AuditTrail, current_trail
from ipt_api.auth import NotAuthenticated, TokenVerifier
from ipt_api.errors import outage_log, status_of
from ipt_api.principal import DEVELOPMENT_PRINCIPAL, Principal
from ipt_api.settings import ApiSettings
from ipt_core.audit import AuditRecord, insert_records
from ipt_core.db.driver import driver_transaction
from ipt_core.db.faults import database_fault
from ipt_core.db.kept import KeptConnections
from ipt_core.fhir.errors import CommitOutcomeUnknown, FhirError, InvalidRequest
from ipt_core.fhir.store import ResourceStore, WriteListener

__all__ = [
    "SAFE_METHODS",
    "AuthenticationMisconfigured",
    "ConnectionDep",
    "FhirBaseDep",
    "PrincipalDep",
    "PublicBaseDep",
    "SettingsDep",
    "StoreDep",
    "get_principal",
    "public_base",
    "request_connection",
    "store_of",
]


_log = logging.getLogger(__name__)
# Requests served without a transaction (autocommit reads): `request_connection`, FhirContext.
SAFE_METHODS = frozenset({"GET", "HEAD"})
_MAX_BASES = 64


class AuthenticationMisconfigured(FhirError):
    """Authentication is disabled on a socket that other machines can reach."""

    status, code = 503, "security"


async def get_settings(request: Request) -> ApiSettings:
    """The settings the app was created with."""
    settings: ApiSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


@asynccontextmanager
async def request_connection(
    request: Request, *, atomic_write: bool = False
) -> AsyncIterator[AsyncConnection]:
    """One transaction per request: committed when the route returns, rolled back on error.

    `scope="function"` below makes the commit happen before the response is sent, so a
    client never reads a response whose write could still fail to commit. When the connection
    is lost during COMMIT nobody knows whether the write was stored: the client is told so
    (`CommitOutcomeUnknown`), to check before it retries.

    With `atomic_write`, the route's one write is atomic on its own (`ResourceStore.create`,
    one statement or a transaction of its own): the connection stays in autocommit, and its
    loss at any point leaves the outcome unknown.
    """
    # Connections in autocommit kept out of the engine's pool (ipt_core/db/kept.py).
    kept: KeptConnections = request.app.state.kept_connections
    if request.method in SAFE_METHODS:
        # Reads need no transaction: autocommit saves the BEGIN and COMMIT round trips.
        async with kept.connection() as conn:
            outage_log(request).recovered()
            yield conn
        return
    engine = request.app.state.database.engine
    trail = current_trail()
    committing = atomic_write
    try:
        # Begun and committed on the driver, SQLAlchemy's statements inside it: SQLAlchemy's
        # own transaction cost a create ~210 µs more CPU (ipt_core/db/driver.py).
        async with kept.connection() as autocommit, _unit(autocommit, atomic_write) as conn:
            outage_log(request).recovered()
            yield conn
            if trail is not None:  # the request's other accesses, in the write's transaction
                # (after an atomic write: on their own, the write stored)
                await insert_records(conn, trail.pending(200))
            committing = True  # the route returned: leaving the block commits
    except Exception as error:
        fault = database_fault(error) if committing else None
        if trail is not None:
            trail.settled = False  # whatever was recorded in the transaction rolled back
            await _record_failure(engine, trail, error)
        if fault is not None and fault.connection_lost:
            raise CommitOutcomeUnknown(
                "The database connection was lost while this write was being committed: it "
                "may or may not have been stored. Read the resource (or search by its "
                "identifier) before retrying, or retry with the same conditional create or "
                "Idempotency-Key"
            ) from error
        raise


def _unit(
    conn: AsyncConnection, atomic_write: bool
) -> AbstractAsyncContextManager[AsyncConnection]:
    """The request's transaction on `conn`, or none when its one write is atomic on its own."""
    return nullcontext(conn) if atomic_write else driver_transaction(conn)


async def get_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """`request_connection` as a dependency (the FHIR routes open it on demand instead)."""
    async with request_connection(request) as conn:
        yield conn


async def _record_failure(engine: AsyncEngine, trail: AuditTrail, error: Exception) -> None:
    """After the rollback, record the failed request in a transaction of its own.

    Shielded from the request's cancellation: a client that left has its request cancelled by
    the disconnect watch (ipt_api/disconnect.py), often just as its failure is being recorded,
    and the records taken from the trail here are nowhere else any more.
    """
    recording = asyncio.ensure_future(_insert_failure(engine, trail.pending(status_of(error))))
    try:
        await asyncio.shield(recording)
    except asyncio.CancelledError:
        await asyncio.wait([recording])  # recorded; the cancellation goes on
        raise


async def _insert_failure(engine: AsyncEngine, records: list[AuditRecord]) -> None:
    try:
        async with engine.begin() as conn:
            await insert_records(conn, records)
    except Exception as failure:  # auditing must not mask the request's own error
        _log.error("audit record of a failed write not stored: %s", type(failure).__name__)


ConnectionDep = Annotated[AsyncConnection, Depends(get_connection, scope="function")]


async def get_store(request: Request, conn: ConnectionDep) -> ResourceStore:
    """The resource store bound to this request's transaction and the app's listeners."""
    return store_of(request, conn)


def store_of(request: Request, conn: AsyncConnection) -> ResourceStore:
    """The resource store on `conn`, with the app's listeners, clock and search limits."""
    listeners: tuple[WriteListener, ...] = request.app.state.write_listeners
    settings: ApiSettings = request.app.state.settings
    return ResourceStore(
        conn,
        listeners=listeners,
        clock=request.app.state.clock,
        search_limits=settings.search_limits,
    )


StoreDep = Annotated[ResourceStore, Depends(get_store)]


async def get_principal(request: Request, settings: SettingsDep) -> Principal:
    """The caller, authenticated once per request (the request gate may have done it already).

    Raises:
        NotAuthenticated: no valid bearer token.
        NotAuthorized: a token this server refuses.
    """
    known: Principal | None = getattr(request.state, "principal", None)
    if known is None:
        known = request.state.principal = await _authenticate(request, settings)
    return known


async def _authenticate(request: Request, settings: ApiSettings) -> Principal:
    """The caller. With authentication disabled (local development) everything is allowed.

    The token's expiry is kept in `request.state.token_expires_at` (long-lived responses such
    as the event stream end with it).
    """
    if settings.loopback_only:
        _refuse_unless_loopback(request)
    if settings.auth_mode == "disabled":
        return DEVELOPMENT_PRINCIPAL
    verifier: TokenVerifier = request.app.state.token_verifier
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("A bearer token is required")
    verified = await verifier.authenticate(token.strip())
    request.state.token_expires_at = verified.expires_at
    principal = verified.principal
    trail = current_trail()
    if trail is not None:
        trail.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_public_base(request: Request, settings: SettingsDep) -> str:
    """`public_base` as a dependency."""
    return public_base(request, settings)


def public_base(request: Request, settings: ApiSettings) -> str:
    """The absolute base URL of this service (no trailing slash), for links and `Location`.

    The configured public one, else the one the client used, whose `Host` is only trusted
    when it is one of `IPT_ALLOWED_HOSTS`: a forged `Host` cannot point links elsewhere.

    Raises:
        InvalidRequest: the `Host` is not allowed (and no public base URL is configured).
    """
    if settings.public_base_url is not None:
        return str(settings.public_base_url).rstrip("/")
    # What Starlette builds `base_url` from. Building the URL and parsing its host cost ~8% of
    # a search's CPU (bench/PROFILE.md, "Third round"): each allowed base is kept, per app.
    scope = request.scope
    key = (
        scope.get("scheme"),
        scope.get("server"),
        scope.get("app_root_path", scope.get("root_path", "")),
        request.headers.get("host"),
    )
    bases: dict[tuple[object, ...], str] = request.app.state.public_bases
    base = bases.get(key)
    if base is None:
        if not settings.host_allowed(request.url.hostname):  # a refused Host is never kept
            raise InvalidRequest(
                "The Host header names no host this server answers for "
                "(IPT_PUBLIC_BASE_URL or IPT_ALLOWED_HOSTS configure them)",
                expression=("Host",),
            )
        base = bases[key] = str(request.base_url).rstrip("/")
        if len(bases) > _MAX_BASES:  # `IPT_ALLOWED_HOSTS=*` allows any: keep the map bounded
            bases.pop(next(iter(bases)))
    return base


PublicBaseDep = Annotated[str, Depends(get_public_base)]


async def get_fhir_base(base: PublicBaseDep) -> str:
    """The absolute FHIR base URL, e.g. `https://host/fhir`."""
    return f"{base}/fhir"


FhirBaseDep = Annotated[str, Depends(get_fhir_base)]


def _refuse_unless_loopback(request: Request) -> None:
    """Serve unauthenticated requests only on a loopback socket, whatever the settings said.

    The settings check IPT_API_HOST, but a server started as a factory
    (`uvicorn … --host 0.0.0.0`) binds what its command line says: the address the
    connection actually arrived on (the ASGI `server`) is what counts. Host names appear only
    with in-process test transports, never from a network server, which reports addresses.
    """
    server = request.scope.get("server")
    host = None if server is None else str(server[0])  # None: a Unix socket (a proxy's)
    if not _loopback_socket(host):
        _log.error("development authentication on a socket off loopback: refused")
        raise AuthenticationMisconfigured(
            "Authentication is disabled or uses the dev key, "
            "which is allowed only on a loopback address"
        )


@functools.lru_cache(maxsize=64)
def _loopback_socket(host: str | None) -> bool:
    """Whether the server socket `host` is on loopback (cached: a server has few sockets).

    A Unix socket (None) is not: a proxy may forward anyone through it. A host name appears
    only with an in-process test transport: there is no socket at all.
    """
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True
