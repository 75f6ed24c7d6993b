"""No patient data in logs or spans, however the API is started.

The API runs as a separate process, the way the container starts it (`uvicorn
ipt_api.app:create_app --factory`, without `--no-access-log`: the factory must turn the
access log off by itself), the way `ipt serve` does and the way `ipt run` does (worker loops
in the API process), with JSON logs captured and spans exported over OTLP/HTTP to a small
local receiver. A demo flow with a distinctive patient (names, MRN, birth date, a note),
searches by identifier and name, and errors (400, 401, 404, 409, 412, 422) must leave none
of those strings in either.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.api import TEST_SECRETS_KEYS
from tests.support.network import free_port

FAMILY = "Quenzalbrook"
GIVEN = "Ottiline"
MRN = "MRN-PHI-7Q3ZK9"
BIRTH_DATE = "1979-02-28"
NOTE = "Mentioned Vashtibeck at work"
ISSUER = "https://idp.phi.example"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"


class OtlpReceiver:
    """Accepts OTLP/HTTP exports (protobuf bodies; strings in them are plain UTF-8)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                receiver.bodies.append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _command(shape: str, port: int) -> list[str]:
    if shape == "container":  # deploy/docker/ipt-api.Dockerfile, minus --no-access-log
        return [
            sys.executable, "-m", "uvicorn", "ipt_api.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port),
            "--http", "ipt_api.http_protocol:CoalescingHttpToolsProtocol",
        ]  # fmt: skip
    return [str(Path(sys.executable).with_name("ipt")), shape]


def _serve(shape: str, env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            _command(shape, port), env=env, stdout=output, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the API did not start")


def _demo_flow(base: str, token: str) -> set[int]:
    """Enrol, record, search, and provoke errors; return the statuses seen."""
    auth = {"Authorization": f"Bearer {token}"}
    seen: set[int] = set()
    with httpx.Client(base_url=base, headers=auth, timeout=30) as http:

        def call(method: str, url: str, **options: Any) -> httpx.Response:
            response = http.request(method, url, **options)
            seen.add(response.status_code)
            return response

        therapist = call(
            "POST", "/fhir/Practitioner", json={"resourceType": "Practitioner"},
            headers={"content-type": "application/fhir+json"},
        ).json()["id"]  # fmt: skip
        enrolment = {
            "patient": {
                "identifier": {"system": MRN_SYSTEM, "value": MRN},
                "family": FAMILY, "given": [GIVEN], "gender": "female", "birth_date": BIRTH_DATE,
            },
            "therapist": f"Practitioner/{therapist}", "conditions": ["F32.1"],
            "problem_areas": ["role-transition"], "planned_sessions": 16, "session_minutes": 50,
            "start": "2026-11-02T09:00:00Z",
            "interpersonal_goals": [{"text": NOTE, "problem_area": "role-transition"}],
            "baseline_phq9": {"total": 17, "item9": 0},
        }  # fmt: skip
        course = call("POST", "/ipt/v1/courses", json=enrolment)
        assert course.status_code == 201, course.text
        course_id = course.json()["id"]
        assert call("POST", f"/ipt/v1/courses/{course_id}/activate").status_code == 200
        session = {"start": "2026-11-09T09:00:00Z", "minutes": 50, "outcome": "attended",
                   "phq9": {"total": 14, "item9": 0}}  # fmt: skip
        assert call("POST", f"/ipt/v1/courses/{course_id}/sessions", json=session).is_success
        found = call("GET", "/fhir/Patient", params={"identifier": f"{MRN_SYSTEM}|{MRN}"})
        patient_id = found.json()["entry"][0]["resource"]["id"]
        assert call("GET", "/fhir/Patient", params={"name": FAMILY}).json()["total"] == 1
        call("GET", "/fhir/Observation", params={"subject": f"Patient/{patient_id}"})
        call("GET", f"/ipt/v1/courses/{course_id}/status")
        # Errors, each with patient data in the URL, a header or the body.
        call("GET", "/fhir/Patient", params={"birthdate": f"{FAMILY}-{MRN}"})  # 400
        call("GET", f"/fhir/Patient/{MRN}")  # 404
        call("POST", f"/ipt/v1/courses/{course_id}/activate")  # 409: already active
        call(
            "PUT", f"/fhir/Patient/{patient_id}", headers={"If-Match": 'W/"999"',
            "content-type": "application/fhir+json"},
            json={"resourceType": "Patient", "id": patient_id, "name": [{"family": FAMILY}]},
        )  # 412  # fmt: skip
        call("POST", f"/ipt/v1/courses/{course_id}/sessions",
             json={**session, "phq9": {"total": 99, "item9": 7}, "note": NOTE})  # fmt: skip
        call("POST", "/ipt/v1/courses", json={**enrolment, "planned_sessions": 0})  # 4xx
        call("GET", "/fhir/Patient", params={"name": FAMILY},
             headers={"Authorization": f"Bearer {MRN}.{FAMILY}.x"})  # 401  # fmt: skip
        call("POST", "/ipt/v1/webhooks",
             json={"url": f"http://127.0.0.1:6379/?mrn={MRN}"})  # 422: internal  # fmt: skip
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["container", "serve", "run"])
def test_no_patient_data_in_logs_or_spans(
    db: AsyncEngine,
    database_url: str,
    signing_key: rsa.RSAPrivateKey,
    otlp: OtlpReceiver,
    tmp_path: Path,
    shape: str,
) -> None:
    port = free_port()
    public = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1"}]}))
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATABASE_URL": database_url.replace("+asyncpg", ""),
        "IPT_API_HOST": "127.0.0.1",
        "IPT_API_PORT": str(port),
        "IPT_PUBLIC_BASE_URL": base,
        "IPT_AUTH_MODE": "jwt",
        "IPT_AUTH_ISSUER": ISSUER,
        "IPT_AUTH_JWKS": str(jwks),
        "IPT_SECRETS_KEYS": TEST_SECRETS_KEYS,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    token = jwt.encode(
        {"iss": ISSUER, "aud": f"{base}/fhir", "sub": "phi-test", "scope": "system/*.*",
         "exp": int(time.time()) + 600},
        signing_key, algorithm="RS256", headers={"kid": "k1"},
    )  # fmt: skip
    log = tmp_path / "api.log"
    process = _serve(shape, env, log, port)
    try:
        seen = _demo_flow(base, token)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert {400, 401, 404, 409, 412, 422} <= seen, seen
    logs = log.read_bytes()
    spans = b"".join(otlp.bodies)
    assert b'"levelname"' in logs  # JSON logs were captured
    assert b"/fhir/Patient" in spans  # spans were exported (route templates)
    for phi in (FAMILY, GIVEN, MRN, BIRTH_DATE, NOTE, "Vashtibeck"):
        assert phi.encode() not in logs, f"{phi} in the log"
        assert phi.encode() not in spans, f"{phi} in the spans"
    assert b"GET /fhir/Patient?" not in logs  # no access-log lines at all
