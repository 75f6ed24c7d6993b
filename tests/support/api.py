"""The API under test: in-process over ASGI, or served by uvicorn for third-party clients."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_api.http_protocol import CoalescingHttpToolsProtocol
from ipt_api.settings import ApiSettings
from ipt_core.db.provision import Database
from tests.support.fhir_validator import FhirBodyChecker
from tests.support.network import free_port
from tests.support.waiting import poll_until_sync

# Seals webhook secrets in tests (IPT_SECRETS_KEYS): a fixed key used nowhere else.
TEST_SECRETS_KEYS = "test1:" + "A" * 43 + "="


def api_settings(**overrides: object) -> ApiSettings:
    """Settings for tests: authentication disabled on loopback, no environment involved.

    The test clients' hosts (`testserver`, `t`, loopback) may start links.
    """
    values: dict[str, object] = {
        "auth_mode": "disabled",
        "api_host": "127.0.0.1",
        "allowed_hosts": ["testserver", "t", "127.0.0.1", "localhost"],
        "secrets_keys": TEST_SECRETS_KEYS,
    }
    values.update(overrides)
    return ApiSettings.model_validate(values)


@pytest.fixture
async def app(db: AsyncEngine) -> AsyncIterator[FastAPI]:
    """The application, sharing the test session's database."""
    application = create_app(api_settings(), database=Database(db))
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app whose every FHIR response is checked by fhirkit."""
    async with checked_client(app) as http:
        yield http


@asynccontextmanager
async def checked_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of `app` over ASGI whose every FHIR response is checked by fhirkit: the
    block fails at its end if the server sent invalid FHIR."""
    checker = FhirBodyChecker()

    async def check(response: httpx.Response) -> None:
        await response.aread()
        checker.check_body(
            str(response.url), response.headers.get("content-type", ""), response.content
        )

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks={"response": [check]}
    ) as http:
        yield http
    assert checker.problems == [], "the server sent invalid FHIR:\n" + "\n".join(checker.problems)


@pytest.fixture
def live_server(db: AsyncEngine, database_url: str) -> Iterator[str]:
    """The API served by uvicorn on a free port (its own engine, in its own thread)."""
    settings = api_settings(database_url=database_url.replace("+asyncpg", ""))
    with served(create_app(settings)) as port:
        yield f"http://127.0.0.1:{port}/fhir"


@contextmanager
def served(app: FastAPI, port: int | None = None) -> Iterator[int]:
    """Serve `app` with uvicorn on loopback `port` (default: a free one), in a thread, as
    `ipt serve` runs it; yield the port."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            http=CoalescingHttpToolsProtocol,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        poll_until_sync(
            lambda: server.started,
            within_s=20,
            give_up=lambda: not thread.is_alive(),
            what="the API to start",
        )
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)
