"""The request gate: authentication before any body byte is read, body limits on every route,
security headers, and links that never follow a forged `Host` (README, "Input limits").

Served by uvicorn over real sockets where it matters whether the server reads the body or
answers `Expect: 100-continue`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_api.settings import ApiSettings
from ipt_core.db.provision import Database
from tests.support.api import api_settings, served

ISSUER = "https://idp.gate.example"
AUDIENCE = "https://ipt.gate.example/fhir"
LIMIT = 64 * 1024
BODY_ROUTES = ["/fhir/Patient", "/fhir", "/ipt/v1/courses", "/ipt/v1/webhooks"]


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def token(signing_key: rsa.RSAPrivateKey) -> str:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "gate-test", "exp": int(time.time()) + 300}
    claims["scope"] = "system/*.*"
    return jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def jwt_settings(signing_key: rsa.RSAPrivateKey, tmp_path: Path, database_url: str) -> ApiSettings:
    public = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig"}]}))
    return api_settings(
        auth_mode="jwt",
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_jwks=str(jwks),
        max_body_bytes=LIMIT,
        database_url=database_url.replace("+asyncpg", ""),
    )


@pytest.fixture
def port(db: AsyncEngine, jwt_settings: ApiSettings) -> Iterator[int]:
    with served(create_app(jwt_settings)) as serving:
        yield serving


def exchange(port: int, head: str, body: bytes = b"", *, wait_s: float = 5.0) -> bytes:
    """Send `head` (and `body`), keep the connection open, return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        received = b""
        try:
            while b"\r\n\r\n" not in received or not _complete(received):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        return received


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 100"):
        return _complete(body) if b"\r\n\r\n" in body else False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def request_head(path: str, length: int, *extra: str) -> str:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *extra,
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_an_anonymous_upload_is_refused_before_its_body(port: int, path: str) -> None:
    # 100 MiB announced, `Expect: 100-continue`, and not one byte sent: the 401 must come
    # at once, without a `100 Continue` inviting the upload.
    answer = exchange(port, request_head(path, 100 * 1024 * 1024, "Expect: 100-continue"))
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"100 Continue" not in answer
    assert b'"OperationOutcome"' in answer


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_small_anonymous_body_is_not_waited_for(port: int, path: str) -> None:
    # Before the gate, /ipt/v1 read (and waited for) the body, then answered 401.
    answer = exchange(port, request_head(path, 20), wait_s=3)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_an_announced_oversized_body_is_413_before_reading(
    port: int, path: str, token: str
) -> None:
    head = request_head(path, LIMIT + 1, "Expect: 100-continue", f"Authorization: Bearer {token}")
    answer = exchange(port, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"100 Continue" not in answer
    assert b'"too-long"' in answer


@pytest.mark.parametrize("path", BODY_ROUTES)
async def test_a_streamed_oversized_body_is_counted(port: int, path: str, token: str) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"resourceType": "Patient", "x": "'
        while sent < 16 * LIMIT:
            sent += 4096
            yield b"a" * 4096
        yield b'"}'

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        try:
            response = await client.post(
                path,
                content=chunks(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        except httpx.HTTPError:
            return  # the server closed the connection on the oversized upload: also refused
    assert response.status_code == 413, response.text
    assert response.json()["issue"][0]["code"] == "too-long"


async def test_a_body_within_the_limit_is_served(port: int, token: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        response = await client.post(
            "/fhir/Patient",
            json={"resourceType": "Patient", "active": True},
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        )
    assert response.status_code == 201, response.text


async def test_every_answer_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in (
        await client.post("/fhir/Patient", json={"resourceType": "Patient", "active": True}),
        await client.get("/fhir/Patient"),
        await client.get("/fhir/Patient/nope"),
        await client.get("/ipt/v1/courses/nope"),
        await client.get("/fhir/metadata"),
        await client.get("/healthz"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store", response.url
    docs = await client.get("/docs")
    assert docs.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in docs.headers.get("Cache-Control", "")


@pytest.fixture
async def forged_host_app(db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings(allowed_hosts=["ipt.hospital.example"]), database=Database(db))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as http:
            yield http


async def test_links_never_follow_a_forged_host(forged_host_app: httpx.AsyncClient) -> None:
    body = {"resourceType": "Patient", "active": True}
    created = await forged_host_app.post("/fhir/Patient", json=body)
    assert created.status_code == 400, created.text
    assert "Location" not in created.headers
    search = await forged_host_app.get("/fhir/Patient")
    assert search.status_code == 400
    assert "evil.example" not in search.text
    allowed = await forged_host_app.get("/fhir/Patient", headers={"Host": "ipt.hospital.example"})
    assert allowed.json()["link"][0]["url"].startswith("http://ipt.hospital.example/fhir/")


async def test_the_public_base_url_wins_over_any_host(db: AsyncEngine) -> None:
    settings = api_settings(public_base_url="https://ipt.hospital.example", allowed_hosts=[])
    app = create_app(settings, database=Database(db))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as http:
            created = await http.post("/fhir/Patient", json={"resourceType": "Patient"})
            assert created.headers["Location"].startswith("https://ipt.hospital.example/fhir/")
            search = await http.get("/fhir/Patient")
    assert "evil.example" not in search.text
