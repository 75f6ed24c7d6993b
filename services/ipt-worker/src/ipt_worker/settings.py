"""Settings of the worker process (one class, read once at start)."""

from __future__ import annotations

from pydantic import Field

from ipt_core.settings import CoreSettings

__all__ = ["WorkerSettings"]


class WorkerSettings(CoreSettings):
    """What the worker reads from its environment, on top of the database settings."""

    poll_interval_s: float = Field(default=0.5, gt=0, le=60)  # idle wait between claims
    batch_size: int = Field(default=100, ge=1, le=10_000)
    lease_s: float = Field(default=60, ge=5)  # a killed worker's courses return after this
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
