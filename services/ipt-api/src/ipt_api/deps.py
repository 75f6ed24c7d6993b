"""Dependencies of the routes, declared once as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from ipt_core.fhir.errors import FhirError
from ipt_core.fhir.store import ResourceStore, WriteListener
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_api.principal import DEVELOPMENT_PRINCIPAL, Principal
from ipt_api.settings import ApiSettings

__all__ = [
    "ConnectionDep",
    "FhirBaseDep",
    "PrincipalDep",
    "SettingsDep",
    "StoreDep",
]


class NotAuthenticated(FhirError):
    """The request carries no valid credentials."""

    status, code = 401, "login"


def get_settings(request: Request) -> ApiSettings:
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
    async with engine.begin() as conn:
        yield conn


ConnectionDep = Annotated[AsyncConnection, Depends(get_connection, scope="function")]


def get_store(request: Request, conn: ConnectionDep) -> ResourceStore:
    """The resource store bound to this request's transaction and the app's listeners."""
    listeners: tuple[WriteListener, ...] = request.app.state.write_listeners
    return ResourceStore(conn, listeners=listeners, clock=request.app.state.clock)


StoreDep = Annotated[ResourceStore, Depends(get_store)]


def get_principal(request: Request, settings: SettingsDep) -> Principal:
    """The caller. With authentication disabled (local development) everything is allowed."""
    if settings.auth_mode == "disabled":
        return DEVELOPMENT_PRINCIPAL
    verifier = request.app.state.token_verifier
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or verifier is None:
        raise NotAuthenticated("A bearer token is required")
    principal: Principal = verifier.verify(token)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_fhir_base(request: Request, settings: SettingsDep) -> str:
    """The absolute FHIR base URL: the configured public one, else the one the client used."""
    return settings.fhir_base(str(request.base_url))


FhirBaseDep = Annotated[str, Depends(get_fhir_base)]
