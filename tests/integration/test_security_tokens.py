"""Tokens: audience required, every malformed token a 401, SSE ends with its token, SMART
discovery, and development authentication only on a loopback socket.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_api.devauth import DevAuth, dev_environment, mint_dev_token
from ipt_api.settings import DEV_ISSUER
from ipt_core.db.provision import Database
from tests.support.api import api_settings

ISSUER = "https://idp.test.example"
PUBLIC_BASE = "https://ipt.test.example"
AUDIENCE = PUBLIC_BASE + "/fhir"  # the default audience: IPT_PUBLIC_BASE_URL + /fhir
TOKEN_ENDPOINT = "https://idp.test.example/token"
Keys = tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]
Sign = Callable[..., str]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )


@pytest.fixture
def jwks_file(keys: Keys, tmp_path: Path) -> Path:
    rsa_key, ec_key = keys
    document = {
        "keys": [
            {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "rsa1"},
            {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec1"},
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def sign(keys: Keys) -> Sign:
    rsa_key, ec_key = keys

    def make(
        *, kid: str = "rsa1", alg: str = "RS256", drop: tuple[str, ...] = (), **claims: object
    ) -> str:
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "integration-engine",
            "exp": int(time.time()) + 300,
            "scope": "system/*.*",
            **claims,
        }
        for name in drop:
            payload.pop(name)
        key = rsa_key if alg.startswith("RS") else ec_key
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})

    return make


async def _client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@pytest.fixture
async def secured(db: AsyncEngine, jwks_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    """jwt mode with no IPT_AUTH_AUDIENCE: the audience defaults to the public FHIR base."""
    settings = api_settings(
        auth_mode="jwt",
        auth_issuer=ISSUER,
        auth_jwks=str(jwks_file),
        public_base_url=PUBLIC_BASE,
        auth_token_endpoint=TOKEN_ENDPOINT,
    )
    async for client in _client(create_app(settings, database=Database(db))):
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_jwt_mode_needs_an_audience(jwks_file: Path) -> None:
    with pytest.raises(ValidationError, match="IPT_AUTH_AUDIENCE or IPT_PUBLIC_BASE_URL"):
        api_settings(auth_mode="jwt", auth_issuer=ISSUER, auth_jwks=str(jwks_file))
    explicit = api_settings(
        auth_mode="jwt", auth_issuer=ISSUER, auth_jwks=str(jwks_file), auth_audience="api://ipt"
    )
    assert explicit.token_audience == "api://ipt"


async def test_the_right_audience_is_accepted(secured: httpx.AsyncClient, sign: Sign) -> None:
    response = await secured.get("/fhir/Patient/x", headers=_bearer(sign()))
    assert response.status_code == 404  # authenticated: the Patient just does not exist


@pytest.mark.parametrize(
    "token_args",
    [
        pytest.param({"aud": "https://another-api.example/fhir"}, id="another-audience"),
        pytest.param({"drop": ("aud",)}, id="no-audience"),
        pytest.param({"drop": ("iss",)}, id="no-issuer"),
        pytest.param({"kid": "rsa1", "alg": "ES256"}, id="es256-with-the-rsa-kid"),
        pytest.param({"kid": "ec1", "alg": "RS256"}, id="rs256-with-the-ec-kid"),
        pytest.param({"scope": None}, id="scope-null"),
        pytest.param({"scope": 5}, id="scope-number"),
        pytest.param({"scope": ["system/*.*"]}, id="scope-list"),
        pytest.param({"drop": ("scope",), "scp": [5]}, id="scp-numbers"),
        pytest.param({"sub": 42}, id="sub-number"),
        pytest.param({"sub": ""}, id="sub-empty"),
        pytest.param({"patient": {"id": "1"}}, id="patient-object"),
        pytest.param({"exp": "tomorrow"}, id="exp-string"),
        pytest.param({"kid": "nobody"}, id="unknown-kid"),
    ],
)
async def test_every_bad_token_is_a_401_without_a_stack_trace(
    secured: httpx.AsyncClient,
    sign: Sign,
    token_args: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    response = await secured.get("/fhir/Patient/x", headers=_bearer(sign(**token_args)))
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == "login"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(
    "header",
    [{"alg": "none"}, {"alg": "HS256"}, {"kid": 7}, {"kid": "ec1", "alg": "ES384"}],
)
async def test_forged_headers_are_401(
    secured: httpx.AsyncClient, sign: Sign, header: dict[str, Any]
) -> None:
    head, body, signature = sign().split(".")
    decoded = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**decoded, **header}).encode()).rstrip(b"=")
    token = f"{forged.decode()}.{body}.{signature}"
    assert (await secured.get("/fhir/Patient/x", headers=_bearer(token))).status_code == 401


async def test_event_stream_ends_when_its_token_expires(
    secured: httpx.AsyncClient, sign: Sign
) -> None:
    token = sign(exp=int(time.time()) + 2)
    started = time.monotonic()
    lines: list[str] = []
    async with asyncio.timeout(15):
        async with secured.stream(
            "GET", "/ipt/v1/events/stream", headers=_bearer(token)
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                lines.append(line)
    assert "event: token-expired" in lines
    assert time.monotonic() - started < 6  # it ended soon after the expiry, on its own


async def test_smart_configuration_from_settings(secured: httpx.AsyncClient) -> None:
    response = await secured.get("/fhir/.well-known/smart-configuration")
    assert response.status_code == 200
    document = response.json()
    assert document["token_endpoint"] == TOKEN_ENDPOINT
    assert document["issuer"] == ISSUER
    assert "permission-v2" in document["capabilities"]
    assert "system/*.rs" in document["scopes_supported"]
    assert "client_credentials" in document["grant_types_supported"]


async def test_capability_statement_declares_smart_security(secured: httpx.AsyncClient) -> None:
    security = (await secured.get("/fhir/metadata")).json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    oauth = security["extension"][0]
    assert oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert {"url": "token", "valueUri": TOKEN_ENDPOINT} in oauth["extension"]


async def test_smart_configuration_without_a_token_endpoint_is_404(db: AsyncEngine) -> None:
    async for client in _client(create_app(api_settings(), database=Database(db))):
        response = await client.get("/fhir/.well-known/smart-configuration")
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("bound", "status"),
    [("http://10.20.30.40:8000", 503), ("http://[::]:8000", 503), ("http://127.0.0.1:8000", 404)],
)
async def test_disabled_auth_checks_the_address_the_request_arrived_on(
    db: AsyncEngine, bound: str, status: int
) -> None:
    # The settings say loopback, but the server (say `uvicorn --host 0.0.0.0`) bound elsewhere:
    # the ASGI `server` is the socket's address.
    app = create_app(api_settings(), database=Database(db))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=bound) as client:
            response = await client.get("/fhir/Patient/x")
    assert response.status_code == status
    if status == 503:
        assert response.json()["issue"][0]["code"] == "security"


def test_the_dev_issuer_is_refused_off_loopback(jwks_file: Path) -> None:
    with pytest.raises(ValidationError, match="local development only"):
        api_settings(
            auth_mode="jwt",
            auth_issuer=DEV_ISSUER,
            auth_jwks=str(jwks_file),
            auth_audience=AUDIENCE,
            api_host="0.0.0.0",
        )


async def test_dev_tokens_work_against_the_dev_key(db: AsyncEngine, tmp_path: Path) -> None:
    # What `make run` + `ipt dev-token` do: the README's curl walk-through depends on it.
    auth = DevAuth(tmp_path / "dev-auth")
    audience = "http://127.0.0.1:8000/fhir"
    environment = dev_environment(auth, audience)
    assert f"IPT_AUTH_ISSUER:={DEV_ISSUER}" in environment
    assert "IPT_SECRETS_KEYS:=dev1:" in environment
    settings = api_settings(
        auth_mode="jwt", auth_issuer=DEV_ISSUER, auth_jwks=str(auth.jwks), auth_audience=audience
    )
    token = mint_dev_token(auth, scope="system/*.*", audience=audience)
    read_only = mint_dev_token(auth, scope="system/*.rs", audience=audience)
    async for client in _client(create_app(settings, database=Database(db))):
        created = await client.post(
            "/fhir/Patient",
            json={"resourceType": "Patient"},
            headers={**_bearer(token), "Content-Type": "application/fhir+json"},
        )
        assert created.status_code == 201
        refused = await client.post(
            "/fhir/Patient",
            json={"resourceType": "Patient"},
            headers={**_bearer(read_only), "Content-Type": "application/fhir+json"},
        )
        assert refused.status_code == 403


@pytest.mark.parametrize("content", [None, "not json", '["a list"]', '{"keys": 5}'])
async def test_an_unloadable_jwks_is_a_503_not_a_crash(
    db: AsyncEngine, tmp_path: Path, sign: Sign, content: str | None
) -> None:
    jwks = tmp_path / "missing.json"
    if content is not None:
        jwks.write_text(content)
    settings = api_settings(
        auth_mode="jwt", auth_issuer=ISSUER, auth_jwks=str(jwks), public_base_url=PUBLIC_BASE
    )
    async for client in _client(create_app(settings, database=Database(db))):
        response = await client.get("/fhir/Patient/x", headers=_bearer(sign()))
        assert response.status_code == 503
        assert response.json()["issue"][0]["code"] == "transient"
