"""Settings of the worker process (one class, read once at start)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from ipt_core.settings import CoreSettings

__all__ = ["PublisherName", "WorkerSettings"]

PublisherName = Literal["log", "webhooks", "nats"]


class WorkerSettings(CoreSettings):
    """What the worker reads from its environment, on top of the database settings."""

    poll_interval_s: float = Field(default=0.5, gt=0, le=60)  # idle wait between claims
    batch_size: int = Field(default=100, ge=1, le=10_000)
    lease_s: float = Field(default=60, ge=5)  # a killed worker's courses return after this
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )

    # -- events: relay, publishers, webhook delivery, retention --------------------------------
    # `IPT_EVENT_PUBLISHERS=webhooks,nats`: comma-separated; `log` logs event type and id only.
    event_publishers: Annotated[tuple[PublisherName, ...], NoDecode] = ("log", "webhooks")
    nats_url: str = "nats://127.0.0.1:4222"
    nats_stream: str = "IPT_EVENTS"  # created when missing, subjects `ipt.events.>`
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_poll_interval_s: float = Field(default=1.0, gt=0, le=60)  # when a NOTIFY is missed
    relay_linger_s: float = Field(default=0.02, ge=0, le=1)  # gather commits into a batch
    relay_standby_retry_s: float = Field(default=1.0, gt=0, le=60)  # standbys try to lead
    relay_reconnect_s: float = Field(default=1.0, gt=0, le=60)  # after a database failure
    event_retention_days: float = Field(default=30, gt=0)  # published events kept this long
    event_retention_interval_s: float = Field(default=3600, gt=0)
    webhook_timeout_s: float = Field(default=10, gt=0, le=120)
    webhook_concurrency: int = Field(default=8, ge=1, le=1000)  # courses sent at once
    webhook_backoff_initial_s: float = Field(default=1, gt=0)
    webhook_backoff_max_s: float = Field(default=3600, gt=0)
    webhook_max_failures: int = Field(default=50, ge=1)  # consecutive, then disabled
    webhook_poll_interval_s: float = Field(default=1.0, gt=0, le=60)

    # -- EHR sync (docs/ehr-sync.md); the endpoints come from IPT_EHR_ENDPOINTS_FILE ----------
    ehr_timeout_s: float = Field(default=15, gt=0, le=300)
    ehr_attempts: int = Field(default=4, ge=1, le=20)  # per request, then the item waits
    ehr_backoff_initial_s: float = Field(default=1, gt=0)
    ehr_backoff_max_s: float = Field(default=300, gt=0)
    ehr_poll_interval_s: float = Field(default=1.0, gt=0, le=60)  # idle wait of the push loop
    ehr_batch_size: int = Field(default=50, ge=1, le=1000)
    ehr_concurrency: int = Field(default=4, ge=1, le=64)  # pushes in flight per endpoint
    ehr_lease_s: float = Field(default=120, ge=1)
    ehr_capabilities_refresh_s: float = Field(default=3600, gt=0)
    ehr_page_size: int = Field(default=100, ge=1, le=1000)
    # -- FHIR Bulk Data $export (docs/analytics.md) -------------------------------------------
    export_poll_interval_s: float = Field(default=1.0, gt=0, le=60)  # idle wait for exports
    export_page_size: int = Field(default=1000, ge=1, le=100_000)  # resources per chunk/step
    export_lease_s: float = Field(default=60, ge=5)  # a killed worker's export resumes after
    export_expiry_s: float = Field(default=86_400, gt=0)  # files kept after completion

    @field_validator("event_publishers", mode="before")
    @classmethod
    def _split_publishers(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value
