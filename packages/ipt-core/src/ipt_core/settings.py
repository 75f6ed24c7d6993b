"""Settings every process shares: where the database is and where local data lives.

Each process (API, worker, command line) has exactly one settings class that extends
`CoreSettings`; modules receive settings as arguments and never read `os.environ` themselves.
"""

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ipt_core.db.engine import asyncpg_url
from ipt_core.net.destinations import DestinationPolicy
from ipt_core.sealing import Keyring

__all__ = ["CoreSettings"]


class CoreSettings(BaseSettings):
    """Database and local-data settings, read from the environment.

    Attributes:
        database_url: `DATABASE_URL`, a PostgreSQL URL (by host and port, or by Unix socket:
            `postgresql://user@/db?host=/run/postgresql`); when unset, an embedded
            PostgreSQL is started.
        data_dir: `IPT_DATA_DIR`; holds the embedded PostgreSQL's data directory.
        database_pool_size: the most connections each process opens (and then keeps open).
        outbound_allow: `IPT_OUTBOUND_ALLOW`, comma-separated CIDRs and host names that
            webhook and EHR destinations may resolve to although they are not public
            (on-premise receivers); everything else internal is refused.
        secrets_keys: `IPT_SECRETS_KEYS`, comma-separated `key-id:base64 32-byte key`; the
            first encrypts new secrets (webhook secrets, EHR credentials), all decrypt.
        ehr_endpoints_file: `IPT_EHR_ENDPOINTS_FILE`; the EHRs to sync with (docs/ehr-sync.md).
    """

    model_config = SettingsConfigDict(
        env_prefix="IPT_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        hide_input_in_errors=True,  # inputs include keys and database passwords
    )

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    data_dir: Path = Path("var")
    database_pool_size: int = Field(default=20, ge=1, le=200)
    outbound_allow: Annotated[tuple[str, ...], NoDecode] = ()
    secrets_keys: SecretStr | None = None
    ehr_endpoints_file: Path | None = None

    @field_validator("database_url")
    @classmethod
    def _valid_database_url(cls, value: str | None) -> str | None:
        # SQLAlchemy's parser (`asyncpg_url`), not pydantic's `PostgresDsn`: that one refuses
        # a URL without a host, which is how a Unix socket is named (the embedded server's).
        if value is not None:
            asyncpg_url(value)  # raises ValueError, never echoing the URL
        return value

    @field_validator("outbound_allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(entry.strip() for entry in value.split(",") if entry.strip())
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _valid_allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        DestinationPolicy.parse(value)  # raises ValueError naming the bad entry
        return value

    @property
    def destination_policy(self) -> DestinationPolicy:
        """Where outbound requests (webhooks, EHRs) may go."""
        return DestinationPolicy.parse(self.outbound_allow)

    @field_validator("secrets_keys")
    @classmethod
    def _valid_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            Keyring.parse(value.get_secret_value())  # raises ValueError, never echoing keys
            return value
        return None

    @property
    def keyring(self) -> Keyring | None:
        """The keys that seal secrets at rest; None when IPT_SECRETS_KEYS is not set."""
        if self.secrets_keys is None:
            return None
        return Keyring.parse(self.secrets_keys.get_secret_value())
