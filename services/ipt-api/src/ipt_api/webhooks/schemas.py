"""Request and response bodies of `/ipt/v1/webhooks` (plain JSON)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from ipt_core.events import EVENT_TYPES
from ipt_core.events.webhooks import DeliveryRecord, Endpoint
from ipt_core.net import redact_userinfo

__all__ = [
    "DeliveryList",
    "DeliveryView",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookEnable",
    "WebhookView",
]

_ID = r"[A-Za-z0-9\-.]{1,64}"  # a FHIR id


class WebhookCreate(BaseModel):
    """A new subscription."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(description="Where events are POSTed (http or https)")
    event_types: list[str] = Field(
        default_factory=list, description="Event types to send; empty: every type"
    )
    therapist: str | None = Field(
        default=None,
        pattern=rf"^Practitioner/{_ID}$",
        description="Only events of this therapist's courses, e.g. `Practitioner/123`",
    )
    organization: str | None = Field(
        default=None,
        pattern=rf"^Organization/{_ID}$",
        description="Only events of this organization's courses",
    )

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        unknown = sorted(set(types) - EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(unknown)}")
        return types


class WebhookEnable(BaseModel):
    """A change of a subscription: enable (its queued deliveries resume) or disable it."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


class WebhookView(BaseModel):
    """A subscription as listed (never with its secret)."""

    id: str
    url: str
    event_types: list[str]
    therapist: str | None
    organization: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="gone | failing | manual")
    consecutive_failures: int
    created_at: datetime

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookView:
        """The view of a stored endpoint."""
        return cls(
            id=endpoint.id,
            url=redact_userinfo(endpoint.url),  # legacy rows may carry credentials
            event_types=list(endpoint.event_types),
            therapist=endpoint.therapist_ref,
            organization=endpoint.organization_ref,
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            consecutive_failures=endpoint.consecutive_failures,
            created_at=endpoint.created_at,
        )


class WebhookCreated(WebhookView):
    """A new subscription, with its signing secret: shown this once only."""

    secret: str = Field(description="`whsec_…`: verify `webhook-signature` with it")


class DeliveryView(BaseModel):
    """One delivery of one event to the endpoint."""

    id: int
    event_id: str
    event_type: str
    partition_key: str
    status: str = Field(description="pending | delivered")
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None = Field(
        description="timeout | connect | refused (not an allowed destination) | http-<status>"
    )
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, record: DeliveryRecord) -> DeliveryView:
        """The view of a stored delivery."""
        fields = {name: getattr(record, name) for name in cls.model_fields}
        return cls.model_validate(fields)


class DeliveryList(BaseModel):
    """An endpoint's deliveries, newest first."""

    deliveries: list[DeliveryView]
    next_before: int | None = Field(description="Pass as `before` for older deliveries")
