"""SMART Backend Services against a local token endpoint that checks every assertion with a
JOSE library (PyJWT) against our public key and refuses a reused `jti`.

The token endpoint and a protected FHIR base are a small Starlette app served by uvicorn on a
free port, so the client talks real HTTP.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ipt_core.ehr.auth import ASSERTION_TYPE, SmartBackendAuthorizer
from ipt_core.ehr.endpoints import EndpointsFileError, SmartBackendAuth, parse_endpoints
from ipt_core.ehr.errors import RemoteAuthFailed
from ipt_core.ehr.remote import RemoteEhr, ehr_http_client
from tests.integration.ehr_support import LOOPBACK_EHR
from tests.support.network import free_port

CLIENT_ID = "ipt-care"


@dataclass
class TokenServer:
    """What the token endpoint saw and issued."""

    public_key: Any
    base: str = ""
    jtis: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    fhir_calls: int = 0
    refuse_all: bool = False

    @property
    def token_url(self) -> str:
        return f"{self.base}/auth/token"

    async def token(self, request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("grant_type") != "client_credentials":
            return self._refuse("unsupported_grant_type")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return self._refuse("invalid_client")
        try:
            claims = jwt.decode(
                str(form.get("client_assertion")),
                self.public_key,
                algorithms=["RS384"],
                audience=self.token_url,
                issuer=CLIENT_ID,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.PyJWTError as error:
            return self._refuse(f"invalid_client: {type(error).__name__}")
        if claims["sub"] != CLIENT_ID or claims["exp"] - time.time() > 300:
            return self._refuse("invalid_client: sub or exp")
        if claims["jti"] in self.jtis:
            return self._refuse("invalid_client: jti reused")
        self.jtis.append(claims["jti"])
        token = secrets.token_urlsafe(16)
        self.issued.append(token)
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": 300, "scope": "x"}
        )

    def _refuse(self, reason: str) -> JSONResponse:
        self.refused.append(reason)
        return JSONResponse({"error": reason.split(":")[0]}, status_code=400)

    async def smart_configuration(self, request: Request) -> JSONResponse:
        return JSONResponse({"token_endpoint": self.token_url})

    async def patients(self, request: Request) -> JSONResponse:
        self.fhir_calls += 1
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.refuse_all or token not in self.issued or token in self.revoked:
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        return JSONResponse({"resourceType": "Bundle", "type": "searchset", "total": 0})


@pytest.fixture(scope="module")
def keys() -> tuple[str, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, private.public_key()


@pytest.fixture
def token_server(keys: tuple[str, Any]) -> Iterator[TokenServer]:
    state = TokenServer(public_key=keys[1])
    app = Starlette(
        routes=[
            Route("/auth/token", state.token, methods=["POST"]),
            Route("/fhir/.well-known/smart-configuration", state.smart_configuration),
            Route("/fhir/Patient", state.patients),
        ]
    )
    port = free_port()
    state.base = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "token server did not start"
        time.sleep(0.02)
    yield state
    server.should_exit = True
    thread.join(timeout=10)


def smart_endpoint(server: TokenServer, pem: str, **auth: Any) -> Any:
    entry = {
        "name": "smart-ehr",
        "base_url": f"{server.base}/fhir",
        "auth": {
            "type": "smart-backend",
            "client_id": CLIENT_ID,
            "key_env": "EHR_KEY",
            "kid": "key-1",
            "alg": "RS384",
            "scopes": "system/Observation.c system/Patient.rs",
            **auth,
        },
        "patient_identifier_system": "urn:x",
    }
    return parse_endpoints({"endpoints": [entry]}, {"EHR_KEY": pem})[0]


async def test_token_is_discovered_fetched_once_and_cached(
    token_server: TokenServer, keys: tuple[str, Any]
) -> None:
    endpoint = smart_endpoint(token_server, keys[0])
    async with ehr_http_client(timeout_s=5, destinations=LOOPBACK_EHR) as http:
        remote = RemoteEhr(endpoint, http)
        for _ in range(3):
            assert await remote.search("Patient", {"identifier": "urn:x|1"}) == []
    assert len(token_server.issued) == 1
    assert token_server.refused == []
    assert token_server.fhir_calls == 3


async def test_a_401_refreshes_the_token_once(
    token_server: TokenServer, keys: tuple[str, Any]
) -> None:
    endpoint = smart_endpoint(token_server, keys[0], token_url=None)
    async with ehr_http_client(timeout_s=5, destinations=LOOPBACK_EHR) as http:
        remote = RemoteEhr(endpoint, http)
        await remote.search("Patient", {})
        token_server.revoked.add(token_server.issued[-1])  # the EHR forgets our token
        await remote.search("Patient", {})
        assert len(token_server.issued) == 2
        assert len(set(token_server.jtis)) == 2  # a new assertion, a new jti

        token_server.refuse_all = True  # now the EHR refuses every token
        calls = token_server.fhir_calls
        with pytest.raises(RemoteAuthFailed):
            await remote.search("Patient", {})
        assert token_server.fhir_calls - calls == 2  # the request and one retry, no more
        assert len(token_server.issued) == 3  # one fresh token for that retry


async def test_a_reused_jti_is_refused_and_ours_never_repeat(
    token_server: TokenServer, keys: tuple[str, Any]
) -> None:
    endpoint = smart_endpoint(token_server, keys[0], token_url=None)
    auth = endpoint.auth
    assert isinstance(auth, SmartBackendAuth)
    authorizer = SmartBackendAuthorizer(auth, endpoint.base_url)
    assertion = authorizer.assertion(token_server.token_url)
    claims = jwt.decode(assertion, keys[1], algorithms=["RS384"], audience=token_server.token_url)
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["exp"] - claims["iat"] <= 300
    assert jwt.get_unverified_header(assertion)["kid"] == "key-1"
    form = {
        "grant_type": "client_credentials",
        "scope": auth.scopes,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    async with httpx.AsyncClient() as http:
        first = await http.post(token_server.token_url, data=form)
        replay = await http.post(token_server.token_url, data=form)
        assert first.status_code == 200
        assert replay.status_code == 400
        assert token_server.refused == ["invalid_client: jti reused"]
        for _ in range(3):
            await authorizer.header(http, fresh=True)
    assert len(token_server.jtis) == len(set(token_server.jtis)) == 4


def test_a_smart_endpoint_needs_its_key_in_the_environment() -> None:
    entry = {
        "name": "epic-prod",
        "base_url": "https://ehr.example.org/fhir/R4",
        "auth": {
            "type": "smart-backend",
            "client_id": "c",
            "key_env": "EPIC_KEY",
            "kid": "k",
            "scopes": "system/Observation.c",
        },
        "patient_identifier_system": "urn:x",
    }
    with pytest.raises(EndpointsFileError, match=r"endpoints\[0\] \(epic-prod\).*auth.key_env"):
        parse_endpoints({"endpoints": [entry]}, {})
