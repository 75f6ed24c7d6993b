"""Settings of the API process (one class, read once at start and injected)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from ipt_core.fhir.search import DEFAULT_SEARCH_LIMITS, SearchLimits
from ipt_core.settings import CoreSettings

__all__ = ["DEV_ISSUER", "ApiSettings", "is_loopback"]

# The issuer of `ipt dev-token` tokens (src/ipt_api/devauth.py): accepted on loopback only.
DEV_ISSUER = "urn:ipt:dev-issuer"


class ApiSettings(CoreSettings):
    """Everything the API reads from its environment (README.md, Configuration)."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    public_base_url: AnyHttpUrl | None = None  # absolute links; default: from the request
    auth_mode: Literal["jwt", "disabled"] = "jwt"
    auth_issuer: str | None = None
    # The `aud` every token must carry; default: the public FHIR base (IPT_PUBLIC_BASE_URL/fhir).
    auth_audience: str | None = None
    auth_jwks: str | None = None  # URL or file path
    # SMART discovery (/.well-known/smart-configuration, CapabilityStatement security):
    auth_token_endpoint: str | None = None  # the identity provider's token endpoint
    auth_authorization_endpoint: str | None = None  # for user-facing (launch) apps
    auth_capabilities: Annotated[tuple[str, ...], NoDecode] = ()  # default: from the above
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=64, ge=8, le=512)
    max_bundle_entries: int = Field(default=1000, ge=1)  # per batch or transaction Bundle
    # Search cost (README, "Input limits"): parameters and comma-separated values per search.
    max_search_params: int = Field(default=DEFAULT_SEARCH_LIMITS.max_params, ge=1, le=1000)
    max_search_values: int = Field(default=DEFAULT_SEARCH_LIMITS.max_values, ge=1, le=10000)
    # Of IPT_DATABASE_POOL_SIZE, the connections kept for reads by id and GET searches
    # (ipt_core/db/read_pool.py; default: half); the rest serve transactions and the
    # in-process worker.
    database_read_pool_size: int | None = Field(default=None, ge=1, le=199)
    # PostgreSQL statement_timeout of the API's connections; 0 turns it off.
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    # Hosts whose `Host` header may start links when IPT_PUBLIC_BASE_URL is unset ("*": any).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"]
    )
    metrics_enabled: bool = False  # IPT_METRICS_ENABLED: Prometheus metrics at /metrics
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    # AuditEvent records older than this are purged (hourly); None keeps them forever.
    audit_retention_days: int | None = Field(default=2190, ge=1)
    run_worker: bool = False  # single-process deployments run the worker loops beside the API
    # How many child processes run them (`ipt run`): as the chart's worker replicas, they share
    # the webhook deliveries and the recomputes; one delivers ~600-900 events/s (2 cores).
    run_worker_processes: int = Field(default=2, ge=1, le=16)
    shutdown_timeout_s: int = Field(default=25, ge=1, le=600)  # drain after SIGTERM (`ipt serve`)
    export_retry_after_s: int = Field(default=5, ge=1, le=3600)  # $export polling hint

    @field_validator("auth_capabilities", mode="before")
    @classmethod
    def _split_capabilities(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(entry.strip() for entry in value.split(",") if entry.strip())
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip() for host in value.split(",") if host.strip()]
        return value

    @model_validator(mode="after")
    def _leave_connections_for_transactions(self) -> ApiSettings:
        # The API splits its connections between reads and transactions: one of each at least.
        if self.database_pool_size < 2:
            raise ValueError("the API needs IPT_DATABASE_POOL_SIZE of 2 or more")
        if self.read_pool_size >= self.database_pool_size:
            raise ValueError(
                "IPT_DATABASE_READ_POOL_SIZE must be smaller than IPT_DATABASE_POOL_SIZE: "
                "it is the part of the pool kept for reads, the rest serves transactions"
            )
        return self

    @property
    def read_pool_size(self) -> int:
        """The connections kept for reads (IPT_DATABASE_READ_POOL_SIZE, else half the pool)."""
        return self.database_read_pool_size or self.database_pool_size // 2

    @property
    def transaction_pool_size(self) -> int:
        """The engine's pool: IPT_DATABASE_POOL_SIZE less the read pool's connections."""
        return self.database_pool_size - self.read_pool_size

    @model_validator(mode="after")
    def _refuse_unsafe_auth(self) -> ApiSettings:
        # Without authentication the API must not be reachable from other machines.
        if self.auth_mode == "disabled" and not _is_loopback(self.api_host):
            raise ValueError(
                "IPT_AUTH_MODE=disabled is for local development only: "
                "set IPT_API_HOST to a loopback address (127.0.0.1 or ::1)"
            )
        if self.auth_issuer == DEV_ISSUER and not _is_loopback(self.api_host):
            raise ValueError(
                "the dev token issuer (ipt dev-token) is for local development only: "
                "set IPT_API_HOST to a loopback address"
            )
        if self.auth_mode == "jwt" and not (self.auth_issuer and self.auth_jwks):
            raise ValueError("IPT_AUTH_MODE=jwt needs IPT_AUTH_ISSUER and IPT_AUTH_JWKS")
        if self.auth_mode == "jwt" and self.token_audience is None:
            # Without an audience, tokens issued for any other API of the issuer would pass.
            raise ValueError(
                "IPT_AUTH_MODE=jwt needs IPT_AUTH_AUDIENCE or IPT_PUBLIC_BASE_URL "
                "(tokens must be issued for this service: aud = <public base>/fhir)"
            )
        return self

    @property
    def loopback_only(self) -> bool:
        """Whether requests must arrive on a loopback socket (no or dev-only authentication)."""
        return self.auth_mode == "disabled" or self.auth_issuer == DEV_ISSUER

    @property
    def token_audience(self) -> str | None:
        """The `aud` tokens must carry: IPT_AUTH_AUDIENCE, else `<IPT_PUBLIC_BASE_URL>/fhir`."""
        if self.auth_audience:
            return self.auth_audience
        if self.public_base_url is not None:
            return str(self.public_base_url).rstrip("/") + "/fhir"
        return None

    @property
    def search_limits(self) -> SearchLimits:
        """The per-search limits, as the search engine takes them."""
        return SearchLimits(max_params=self.max_search_params, max_values=self.max_search_values)

    def host_allowed(self, host: str | None) -> bool:
        """Whether links may start with `host` (exact, `*.domain` suffix, or `*`)."""
        host = (host or "").lower().rstrip(".")
        for allowed in self.allowed_hosts:
            allowed = allowed.lower()
            if allowed in {"*", host} or (allowed.startswith("*.") and host.endswith(allowed[1:])):
                return True
        return False


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is loopback only."""
    return _is_loopback(host.strip("[]"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
