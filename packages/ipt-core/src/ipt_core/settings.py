"""Settings every process shares: where the database is and where local data lives.

Each process (API, worker, command line) has exactly one settings class that extends
`CoreSettings`; modules receive settings as arguments and never read `os.environ` themselves.
"""

from pathlib import Path

from pydantic import Field, PostgresDsn
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CoreSettings"]


class CoreSettings(BaseSettings):
    """Database and local-data settings, read from the environment.

    Attributes:
        database_url: `DATABASE_URL`; when unset, an embedded PostgreSQL is started.
        data_dir: `IPT_DATA_DIR`; holds the embedded PostgreSQL's data directory.
        database_pool_size: connections each process keeps open.
    """

    model_config = SettingsConfigDict(
        env_prefix="IPT_", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: PostgresDsn | None = Field(default=None, validation_alias="DATABASE_URL")
    data_dir: Path = Path("var")
    database_pool_size: int = Field(default=10, ge=1, le=200)
