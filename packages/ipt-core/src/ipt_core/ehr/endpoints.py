"""The EHR endpoints file (`IPT_EHR_ENDPOINTS_FILE`): its shape, loading and validation.

Credentials are never in the file: it names the environment variables that hold them, and
they are read once, when the file is loaded (docs/ehr-sync.md). A bad file stops the process
at start with a message naming the entry and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

__all__ = [
    "DEFAULT_PULL",
    "DEFAULT_PUSH",
    "BearerAuth",
    "EhrEndpoint",
    "EndpointsFileError",
    "NoAuth",
    "SmartBackendAuth",
    "configured_endpoints",
    "load_endpoints",
    "parse_endpoints",
]

PushType = Literal["Observation", "Encounter", "CarePlan", "Goal", "DocumentReference"]
PullType = Literal["Encounter", "Appointment", "Observation"]
DEFAULT_PUSH: Final[tuple[PushType, ...]] = (
    "Observation",
    "Encounter",
    "CarePlan",
    "Goal",
    "DocumentReference",
)
DEFAULT_PULL: Final[tuple[PullType, ...]] = ("Encounter", "Appointment", "Observation")


class EndpointsFileError(ValueError):
    """The endpoints file is missing, unreadable or invalid; the message names entry and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoAuth(_Strict):
    """No authentication (test servers)."""

    type: Literal["none"]


class BearerAuth(_Strict):
    """A static bearer token, read from the environment variable `token_env`."""

    type: Literal["bearer"]
    token_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    token: SecretStr | None = Field(default=None, exclude=True)  # resolved at load


class SmartBackendAuth(_Strict):
    """SMART Backend Services: a signed JWT assertion exchanged for an access token.

    The private key (PEM) is read from the environment variable `key_env`.
    """

    type: Literal["smart-backend"]
    client_id: str = Field(min_length=1)
    key_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kid: str = Field(min_length=1)
    alg: Literal["RS384", "ES384"] = "RS384"
    scopes: str = Field(min_length=1)
    token_url: str | None = Field(default=None, pattern=r"^https?://")
    private_key: SecretStr | None = Field(default=None, exclude=True)  # resolved at load


Auth = Annotated[NoAuth | BearerAuth | SmartBackendAuth, Field(discriminator="type")]


class EhrEndpoint(_Strict):
    """One EHR the service synchronises with."""

    name: str = Field(pattern=r"^[a-z0-9-]+$", max_length=63)
    base_url: str = Field(pattern=r"^https?://[^\s]+$")
    auth: Auth
    patient_identifier_system: str = Field(min_length=1)
    push: tuple[PushType, ...] = DEFAULT_PUSH
    pull: tuple[PullType, ...] = DEFAULT_PULL
    pull_interval_s: float = Field(default=60, gt=0)
    max_requests_per_s: float = Field(default=20, gt=0)

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def host(self) -> str:
        """The EHR's host name: the only part of its address spans and logs carry."""
        return self.base_url.split("://", 1)[1].split("/", 1)[0]

    def public_view(self) -> dict[str, Any]:
        """The endpoint without secrets (the environment variable names are not secret)."""
        return self.model_dump(mode="json")


class _File(_Strict):
    endpoints: list[EhrEndpoint] = Field(default_factory=list)


def load_endpoints(
    path: Path, environ: Mapping[str, str], *, with_secrets: bool = True
) -> tuple[EhrEndpoint, ...]:
    """Read and validate the endpoints file, resolving credentials from `environ`.

    `with_secrets=False` (the API, which only lists endpoints) leaves credentials unread.

    Raises:
        EndpointsFileError: the file cannot be read or is invalid (entry and field named).
    """
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise EndpointsFileError(f"{path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise EndpointsFileError(f"{path}: not valid YAML ({error})") from None
    return parse_endpoints(data, environ, source=str(path), with_secrets=with_secrets)


def parse_endpoints(
    data: object,
    environ: Mapping[str, str],
    *,
    source: str = "endpoints file",
    with_secrets: bool = True,
) -> tuple[EhrEndpoint, ...]:
    """Validate parsed YAML (see `load_endpoints`)."""
    if data is None:
        data = {}
    try:
        parsed = _File.model_validate(data)
    except ValidationError as error:
        raise EndpointsFileError(f"{source}: {_describe(error, data)}") from None
    endpoints = [
        _with_secrets(endpoint, index, environ, source) if with_secrets else endpoint
        for index, endpoint in enumerate(parsed.endpoints)
    ]
    _check_unique(endpoints, source)
    return tuple(endpoints)


def _describe(error: ValidationError, data: object) -> str:
    problems = []
    for problem in error.errors():
        location = list(problem["loc"])
        where = _entry_name(location, data)
        field = ".".join(str(part) for part in location[2:] if not _is_union_tag(part))
        problems.append(f"{where}: field {field or location[-1]!s}: {problem['msg']}")
    return "; ".join(problems)


def _is_union_tag(part: object) -> bool:
    return part in {"none", "bearer", "smart-backend"}


def _entry_name(location: Sequence[object], data: object) -> str:
    if len(location) < 2 or location[0] != "endpoints" or not isinstance(location[1], int):
        return "file"
    index = location[1]
    name = None
    if isinstance(data, dict):
        entries = data.get("endpoints")
        if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
            name = entries[index].get("name")
    return f"endpoints[{index}]" + (f" ({name})" if isinstance(name, str) else "")


def _with_secrets(
    endpoint: EhrEndpoint, index: int, environ: Mapping[str, str], source: str
) -> EhrEndpoint:
    auth = endpoint.auth
    where = f"{source}: endpoints[{index}] ({endpoint.name})"
    if isinstance(auth, BearerAuth):
        token = environ.get(auth.token_env)
        if not token:
            raise EndpointsFileError(
                f"{where}: field auth.token_env: environment variable {auth.token_env} is not set"
            )
        auth = auth.model_copy(update={"token": SecretStr(token)})
    elif isinstance(auth, SmartBackendAuth):
        key = environ.get(auth.key_env)
        if not key or "PRIVATE KEY" not in key:
            raise EndpointsFileError(
                f"{where}: field auth.key_env: environment variable {auth.key_env} "
                "does not hold a PEM private key"
            )
        auth = auth.model_copy(update={"private_key": SecretStr(key)})
    return endpoint.model_copy(update={"auth": auth})


def _check_unique(endpoints: Sequence[EhrEndpoint], source: str) -> None:
    seen: set[str] = set()
    for index, endpoint in enumerate(endpoints):
        if endpoint.name in seen:
            raise EndpointsFileError(
                f"{source}: endpoints[{index}] ({endpoint.name}): field name: "
                "the name is used by an earlier entry"
            )
        seen.add(endpoint.name)


def configured_endpoints(
    path: Path | None, environ: Mapping[str, str], *, with_secrets: bool = True
) -> tuple[EhrEndpoint, ...]:
    """The endpoints of `IPT_EHR_ENDPOINTS_FILE` (none when it is not set)."""
    return () if path is None else load_endpoints(path, environ, with_secrets=with_secrets)
