"""A real third-party FHIR R4 server for the EHR tests: `sekmet-fhir`, started on a free port.

`make install` puts sekmet-fhir into a virtual environment of its own (`.tools/sekmet`, from
tests/peers/sekmet-requirements.txt) because it pins its own FastAPI and pydantic. Each server
runs as a child process in a directory of its own (its SQLite database, settings file and keys
live there), with `SEKMET_BASE_URL` set to the port it listens on, so every `Location` header and
`next` link it writes points back at it.

    with running_sekmet(tmp_path) as ehr:
        httpx.get(f"{ehr.base_url}/metadata")

    with running_sekmet(tmp_path, bearer_token="s3cret") as ehr:   # every request needs it
        ...
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.network import free_port
from tests.support.processes import stop_process

__all__ = ["SEKMET_BIN", "Sekmet", "SekmetNotInstalledError", "running_sekmet"]

SEKMET_BIN = Path(__file__).resolve().parents[2] / ".tools" / "sekmet" / "bin" / "sekmet"
_START_TIMEOUT_S = 90.0  # it imports a lot; a loaded machine is slow


class SekmetNotInstalledError(RuntimeError):
    """sekmet-fhir is not installed: `make install` installs it into .tools/sekmet."""


@dataclass(frozen=True)
class Sekmet:
    """A running sekmet-fhir server.

    Attributes:
        base_url: The FHIR base, `http://127.0.0.1:<port>/fhir` (no trailing slash).
        root_url: The server root (`/auth/token`, `/.well-known/...` hang off it).
        port: The TCP port it listens on.
        directory: Its working directory (database, settings, log).
        bearer_token: The token every request must carry, or None when it needs none.
    """

    base_url: str
    root_url: str
    port: int
    directory: Path
    bearer_token: str | None

    @property
    def headers(self) -> dict[str, str]:
        """The headers a client needs to be let in (Authorization, when a token is required)."""
        return {"Authorization": f"Bearer {self.bearer_token}"} if self.bearer_token else {}

    def client(self, **kwargs: Any) -> httpx.Client:
        """A synchronous httpx client on the FHIR base, authorised, for test set-up and checks."""
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=10, **kwargs)


def _settings(port: int, bearer_token: str | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    server_auth: dict[str, Any] = {"types": ["none"]}
    if bearer_token:
        server_auth = {"types": ["bearer"], "tokens": [bearer_token]}
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "data_dir": "data",
        "server_auth": server_auth,
        # The workflow simulator answers Appointments and orders on its own: not in these tests.
        "simulator": {"enabled": False},
        "log_inbound": False,
    }
    settings.update(extra)
    return settings


def _wait_until_up(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-2000:]
            raise RuntimeError(f"sekmet exited with {process.returncode}: {tail}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/metadata", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    tail = log.read_text()[-2000:]
    raise RuntimeError(f"sekmet did not answer within {_START_TIMEOUT_S}s: {tail}")


@contextlib.contextmanager
def running_sekmet(
    directory: Path,
    *,
    bearer_token: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Iterator[Sekmet]:
    """Start a sekmet-fhir server on a free port; stop it (and its process) on exit.

    Args:
        directory: Where the server keeps its files (a `sekmet` folder is made in it).
        bearer_token: When given, the server accepts only requests carrying this bearer token.
        settings: Extra top-level sekmet settings (e.g. `server_auth` with `smart_clients`),
            merged over the defaults of this helper.

    Yields:
        The running server.

    Raises:
        SekmetNotInstalledError: sekmet-fhir is not installed (`make install`).
        RuntimeError: The server did not come up.
    """
    if not SEKMET_BIN.exists():
        raise SekmetNotInstalledError(f"{SEKMET_BIN} is missing: run `make install`")
    home = directory / "sekmet"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    root_url = f"http://127.0.0.1:{port}"
    base_url = f"{root_url}/fhir"
    config = home / "settings.yaml"
    # JSON is YAML: sekmet reads this with yaml.safe_load.
    config.write_text(json.dumps(_settings(port, bearer_token, settings or {})))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SEKMET_", "VIRTUAL_ENV"))},
        "SEKMET_CONFIG": str(config),
        "SEKMET_BASE_URL": base_url,
        "SEKMET_DB": str(home / "sekmet.db"),
        "SEKMET_PORT": str(port),
    }
    log = home / "sekmet.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(SEKMET_BIN), "serve", "--config", str(config), "--host", "127.0.0.1"],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(process, base_url, log)
        yield Sekmet(base_url, root_url, port, home, bearer_token)
    finally:
        stop_process(process, timeout_s=10)
