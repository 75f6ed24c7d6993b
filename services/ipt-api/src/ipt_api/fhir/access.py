"""Authorization of FHIR interactions by the caller's SMART scopes."""

from __future__ import annotations

from ipt_api.principal import Principal
from ipt_core.fhir.errors import NotAuthorized

__all__ = ["authorize"]


def authorize(principal: Principal, resource_type: str, interaction: str) -> None:
    """Refuse (403) an interaction the caller's scopes do not grant."""
    if not principal.may(resource_type, interaction):
        raise NotAuthorized(f"The token's scopes do not allow {interaction} on {resource_type}")
