"""Dependencies of the routes, declared once as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_api.auth import NotAuthenticated, TokenVerifier
from ipt_api.principal import DEVELOPMENT_PRINCIPAL, Principal
from ipt_api.settings import ApiSettings
from ipt_core.fhir.errors import NotAuthorized
from ipt_core.fhir.store import ResourceStore, WriteListener

__all__ = [
    "ConnectionDep",
    "FhirBaseDep",
    "PrincipalDep",
    "SettingsDep",
    "StoreDep",
]


_SAFE_METHODS = frozenset({"GET", "HEAD"})


async def get_settings(request: Request) -> ApiSettings:
    """The settings the app was created with."""
    settings: ApiSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


async def get_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """One transaction per request: committed when the route returns, rolled back on error.

    `scope="function"` below makes the commit happen before the response is sent, so a
    client never reads a response whose write could still fail to commit.
    """
    engine: AsyncEngine = request.app.state.database.engine
    if request.method in _SAFE_METHODS:
        # Reads need no transaction: autocommit saves the BEGIN and COMMIT round trips.
        async with engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")
        return
    async with engine.begin() as conn:
        yield conn


ConnectionDep = Annotated[AsyncConnection, Depends(get_connection, scope="function")]


async def get_store(request: Request, conn: ConnectionDep) -> ResourceStore:
    """The resource store bound to this request's transaction and the app's listeners."""
    listeners: tuple[WriteListener, ...] = request.app.state.write_listeners
    return ResourceStore(conn, listeners=listeners, clock=request.app.state.clock)


StoreDep = Annotated[ResourceStore, Depends(get_store)]


async def get_principal(request: Request, settings: SettingsDep) -> Principal:
    """The caller. With authentication disabled (local development) everything is allowed."""
    if settings.auth_mode == "disabled":
        return DEVELOPMENT_PRINCIPAL
    verifier: TokenVerifier = request.app.state.token_verifier
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("A bearer token is required")
    principal = await verifier.verify(token.strip())
    if principal.patient is not None or any(s.startswith("patient/") for s in principal.scopes):
        # Patient-compartment filtering is not implemented yet: refuse rather than over-share.
        raise NotAuthorized("patient/ scopes are not supported yet; use system/ or user/ scopes")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_fhir_base(request: Request, settings: SettingsDep) -> str:
    """The absolute FHIR base URL: the configured public one, else the one the client used."""
    return settings.fhir_base(str(request.base_url))


FhirBaseDep = Annotated[str, Depends(get_fhir_base)]
