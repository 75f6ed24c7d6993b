"""What the Helm chart renders for security: audience, no access log, secrets keys, allow-list."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "ipt"
HELM = Path(sys.executable).parent / "helm"
REQUIRED = [
    "--set", "database.url=postgresql://ipt:secret@db.example.org:5432/ipt",
    "--set", "auth.issuer=https://idp.example.org/realms/fhir",
    "--set", "auth.jwks=https://idp.example.org/realms/fhir/certs",
]  # fmt: skip


def render(*options: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(HELM), "template", "ipt", str(CHART), *REQUIRED, *options],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _find(docs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix))


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item for item in container.get("env", [])}


def test_the_audience_defaults_to_the_public_fhir_base() -> None:
    docs = render("--set", "publicBaseUrl=https://ipt.hospital.example/")
    config = _find(docs, "ConfigMap", "ipt")["data"]
    assert config["IPT_AUTH_AUDIENCE"] == "https://ipt.hospital.example/fhir"


def test_an_empty_audience_without_a_public_url_is_refused() -> None:
    result = subprocess.run(
        [str(HELM), "template", "ipt", str(CHART), *REQUIRED],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "auth.audience is required" in result.stderr


def test_api_runs_without_access_log_and_both_get_the_secrets_keys() -> None:
    docs = render(
        "--set", "auth.audience=api://ipt",
        "--set", "webhooks.signingKey=k1:MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=",
        "--set-json", 'outbound.allow=["10.40.0.0/16","dashboards.hospital.local"]',
    )  # fmt: skip
    api = _find(docs, "Deployment", "-api")
    args = api["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--no-access-log" in args
    assert "IPT_SECRETS_KEYS" in _env(api)
    assert "IPT_SECRETS_KEYS" in _env(_find(docs, "Deployment", "-worker"))
    config = _find(docs, "ConfigMap", "ipt")["data"]
    assert config["IPT_OUTBOUND_ALLOW"] == "10.40.0.0/16,dashboards.hospital.local"
    assert config["IPT_AUTH_AUDIENCE"] == "api://ipt"


def test_migrations_reseal_with_keys_from_an_existing_secret() -> None:
    docs = render(
        "--set", "auth.audience=api://ipt",
        "--set", "webhooks.existingSecret=ipt-webhooks",
    )  # fmt: skip
    job = _find(docs, "Job", "-migrations")
    assert _env(job)["IPT_SECRETS_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "ipt-webhooks"
