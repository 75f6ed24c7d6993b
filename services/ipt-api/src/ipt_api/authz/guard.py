"""Writes of a compartment caller stay inside the patient's compartment.

A store write listener, so FHIR writes, transaction entries and the domain API's use cases
are all held to the same rule, inside the write's transaction (raising rolls it back):
the version replaced must be the patient's (else 404, as if it did not exist), and the new
content must be in the compartment (else 403).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_api.audit.trail import current_trail
from ipt_api.authz.compartment import in_compartment, in_compartment_types, patients_of
from ipt_core.fhir.errors import NotAuthorized, ResourceNotFound
from ipt_core.fhir.model import Change

__all__ = ["CompartmentWriteGuard"]


class CompartmentWriteGuard:
    """Refuses a `patient/`-scoped caller's writes outside its patient's compartment."""

    def concerns(self, change: Change) -> bool:
        """Every write of a compartment caller; none of anyone else."""
        return _compartment() is not None

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """Check `change` against the current caller's compartment."""
        patient = _compartment()
        if patient is None:
            return
        resource_type = change.stored.resource_type
        if resource_type not in in_compartment_types():
            raise NotAuthorized(f"patient/ scopes do not allow writing {resource_type}")
        previous = change.previous
        if previous is not None and not previous.deleted and not in_compartment(previous, patient):
            raise ResourceNotFound(f"{resource_type}/{change.stored.id} is not known")
        if change.resource is not None and patient not in patients_of(
            resource_type, change.resource
        ):
            raise NotAuthorized(
                f"The {resource_type} would be outside the token's patient compartment"
            )


def _compartment() -> str | None:
    """The patient whose compartment holds the current caller, if it is held to one."""
    trail = current_trail()
    principal = trail.principal if trail is not None else None
    return principal.compartment if principal is not None else None
