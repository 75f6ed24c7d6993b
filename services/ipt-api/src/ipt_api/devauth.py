"""Local development with authentication on: a dev signing key and tokens minted with it.

`make run` runs `ipt dev-env`, which creates (once) an ES256 key and its JWKS under
`<IPT_DATA_DIR>/dev-auth/` plus a dev `IPT_SECRETS_KEYS` entry, and prints the settings that
point the API at them; `ipt dev-token --scope …` mints tokens with that key. The issuer is
`DEV_ISSUER`, which the API accepts only on a loopback address (see `ApiSettings`), so a dev
key copied to a server cannot be used there.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from ipt_api.settings import DEV_ISSUER
from ipt_core.sealing import new_key

__all__ = ["DevAuth", "dev_environment", "dev_settings", "mint_dev_token"]

_KID = "ipt-dev-1"


@dataclass(frozen=True)
class DevAuth:
    """Where the dev key, its JWKS and the dev secrets key live."""

    directory: Path

    @property
    def private_key(self) -> Path:
        """The PEM of the ES256 signing key (mode 0600)."""
        return self.directory / "signing-key.pem"

    @property
    def jwks(self) -> Path:
        """The JWK Set the API verifies dev tokens with (IPT_AUTH_JWKS)."""
        return self.directory / "jwks.json"

    @property
    def secrets_keys(self) -> Path:
        """The dev IPT_SECRETS_KEYS value (mode 0600)."""
        return self.directory / "secrets-keys"

    def ensure(self) -> None:
        """Create the key, its JWKS and the secrets key unless they exist (idempotent)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.private_key.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_private(self.private_key, pem.decode())
            public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
            jwk = {**public, "kid": _KID, "use": "sig", "alg": "ES256"}
            self.jwks.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
        if not self.secrets_keys.exists():
            _write_private(self.secrets_keys, new_key("dev1") + "\n")


def mint_dev_token(
    auth: DevAuth,
    *,
    scope: str,
    audience: str,
    patient: str | None = None,
    subject: str = "dev-user",
    expires_in_s: int = 3600,
) -> str:
    """A token signed with the dev key, as an identity provider would issue it."""
    auth.ensure()
    key = serialization.load_pem_private_key(auth.private_key.read_bytes(), password=None)
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": DEV_ISSUER,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "exp": now + expires_in_s,
        "scope": scope,
    }
    if patient:
        claims["patient"] = patient
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": _KID})  # type: ignore[arg-type]


def dev_settings(auth: DevAuth, audience: str) -> dict[str, str]:
    """The auth and secrets settings of a local run with the dev key (environment names)."""
    auth.ensure()
    return {
        "IPT_AUTH_MODE": "jwt",
        "IPT_AUTH_ISSUER": DEV_ISSUER,
        "IPT_AUTH_JWKS": str(auth.jwks.resolve()),
        "IPT_AUTH_AUDIENCE": audience,
        "IPT_SECRETS_KEYS": auth.secrets_keys.read_text().strip(),
    }


def dev_environment(auth: DevAuth, audience: str) -> str:
    """Shell lines that default the auth and secrets settings to the dev key (for `eval`).

    Variables already set keep their values, so `IPT_AUTH_MODE=disabled make run` still works.
    """
    defaults = dev_settings(auth, audience)
    lines = [f': "${{{name}:={shlex.quote(value)}}}"' for name, value in defaults.items()]
    lines.append("export " + " ".join(defaults))
    return "\n".join(lines)


def _write_private(path: Path, content: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(content)
