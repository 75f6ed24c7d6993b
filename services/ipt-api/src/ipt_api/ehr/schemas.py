"""Response bodies of `/ipt/v1/ehr` (plain JSON). No secret ever appears in them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ipt_core.ehr.endpoints import EhrEndpoint
from ipt_core.ehr.repository import DeadLetter, EndpointRow

__all__ = ["DeadLetterView", "EndpointStatus", "EndpointView"]


class EndpointView(BaseModel):
    """An endpoint as configured (credentials are named by environment variable only)."""

    name: str
    base_url: str
    auth: dict[str, Any] = Field(description="type, and the names of the variables it reads")
    patient_identifier_system: str
    push: list[str]
    pull: list[str]
    pull_interval_s: float
    max_requests_per_s: float

    @classmethod
    def of(cls, endpoint: EhrEndpoint) -> EndpointView:
        """The public view of `endpoint`."""
        return cls.model_validate(endpoint.public_view())


class EndpointStatus(BaseModel):
    """How the sync with one endpoint is doing."""

    name: str
    last_push_at: datetime | None = Field(description="Last successful push")
    last_pull_at: datetime | None = Field(description="Last complete pull pass")
    push_lag_s: float = Field(description="Age of the oldest pending push (0 when none)")
    pull_lag_s: float | None = Field(description="Seconds since the last complete pull pass")
    queue_depth: int = Field(description="Pending push items")
    dead_letters: int
    last_error: str | None = Field(description="Kind of the last failure (no patient data)")
    last_error_at: datetime | None
    accepted_types: list[str] | None = Field(
        description="Configured push types the EHR's CapabilityStatement accepts"
    )
    capabilities: dict[str, Any] | None = Field(description="What the EHR said it supports")
    capabilities_at: datetime | None

    @classmethod
    def of(
        cls,
        row: EndpointRow | None,
        name: str,
        counts: tuple[int, int, datetime | None],
        now: datetime,
    ) -> EndpointStatus:
        """Combine the endpoint row and its queue counts."""
        pending, dead, oldest = counts
        return cls(
            name=name,
            last_push_at=row.last_push_at if row else None,
            last_pull_at=row.last_pull_at if row else None,
            push_lag_s=(now - oldest).total_seconds() if oldest else 0.0,
            pull_lag_s=(now - row.last_pull_at).total_seconds()
            if row and row.last_pull_at
            else None,
            queue_depth=pending,
            dead_letters=dead,
            last_error=row.last_error if row else None,
            last_error_at=row.last_error_at if row else None,
            accepted_types=row.accepted_types if row else None,
            capabilities=row.capabilities if row else None,
            capabilities_at=row.capabilities_at if row else None,
        )


class DeadLetterView(BaseModel):
    """Push work the EHR refused."""

    id: int
    kind: str = Field(description="resource | course-summary")
    resource: str = Field(description="Our `Type/id` (for a course summary: the CarePlan)")
    attempts: int
    error: str | None
    operation_outcome: dict[str, Any] | None = Field(description="The EHR's OperationOutcome")
    dead_at: datetime | None

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterView:
        """The view of a stored dead letter."""
        return cls(
            id=letter.id,
            kind=letter.kind,
            resource=f"{letter.resource_type}/{letter.resource_id}",
            attempts=letter.attempts,
            error=letter.last_error,
            operation_outcome=letter.operation_outcome,
            dead_at=letter.dead_at,
        )
