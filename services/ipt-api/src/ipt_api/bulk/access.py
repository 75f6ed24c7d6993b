"""Who may export, and whose exports a caller may see: every check of `$export` in one spot.

- Kick-off needs a `system/` scope granting search on every exported type (`system/*.read`,
  `system/*.rs`, or per type), as the Bulk Data IG's backend-services clients have.
- A kick-off is an access to patient data like a search: each exported type is noted on the
  request's audit trail (an AuditEvent with subtype `operation`), allowed or refused.
- An export belongs to the token subject that kicked it off (for SMART backend services the
  `sub` is the client id); its status, manifest and files answer 404 to anyone else, exactly
  as for an export that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable

from ipt_api.audit.trail import Access, current_trail
from ipt_api.principal import Principal
from ipt_core.fhir.errors import NotAuthorized

__all__ = ["authorize_export", "export_owner"]


def authorize_export(principal: Principal, resource_types: Iterable[str]) -> None:
    """Refuse (403) a kick-off whose token lacks system-level read of an exported type."""
    resource_types = tuple(resource_types)
    trail = current_trail()
    if trail is not None:
        trail.principal = principal
        for resource_type in resource_types:
            trail.note(Access("operation", resource_type, query_names=("$export",)))
    system = Principal(
        principal.subject, frozenset(s for s in principal.scopes if s.startswith("system/"))
    )
    missing = [t for t in resource_types if not system.may(t, "search")]
    if missing:
        raise NotAuthorized(
            "Bulk export needs system-level read scopes (e.g. system/*.read or system/*.rs) "
            f"for {', '.join(sorted(missing))}"
        )


def export_owner(principal: Principal) -> str:
    """The owner recorded with an export and required to read it: the token subject."""
    return principal.subject
