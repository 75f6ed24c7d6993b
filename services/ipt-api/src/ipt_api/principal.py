"""Who is calling. Every route depends on `PrincipalDep`, so authorization lands in one place."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AUDIT_TYPE", "DEVELOPMENT_PRINCIPAL", "Principal"]

AUDIT_TYPE = "AuditEvent"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: subject, granted SMART scopes, and patient compartment."""

    subject: str
    scopes: frozenset[str]
    patient: str | None = None  # the token's `patient` claim (launch context)
    client_id: str | None = None  # the OAuth client (`client_id` or `azp` claim)

    @property
    def compartment(self) -> str | None:
        """The Patient whose compartment limits this caller: set when any scope is `patient/`.

        A token mixing `patient/` with `user/` or `system/` scopes is limited too (the most
        restrictive reading); a `patient/` scope without a `patient` claim reaches no one.
        """
        if any(scope.startswith("patient/") for scope in self.scopes):
            return self.patient or ""
        return None

    def may(self, resource_type: str, interaction: str) -> bool:
        """Whether the scopes allow `interaction` (read, write, …) on `resource_type`."""
        return any(_grants(scope, resource_type, interaction) for scope in self.scopes)


DEVELOPMENT_PRINCIPAL = Principal(
    "development", frozenset({"system/*.*", f"system/{AUDIT_TYPE}.rs"})
)

_V2_LETTERS = {
    "read": "rs",
    "search": "s",
    "vread": "r",
    "history": "r",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
}


def _grants(scope: str, resource_type: str, interaction: str) -> bool:
    context, _, rest = scope.partition("/")
    if context not in {"system", "user", "patient"}:
        return False
    scoped_type, _, access = rest.partition(".")
    if scoped_type not in {"*", resource_type}:
        return False
    if resource_type == AUDIT_TYPE and (scoped_type == "*" or context == "patient"):
        return False  # the audit trail is granted by name only, never by a wildcard
    if access in {"*", "write"} and interaction not in {"read", "search", "vread", "history"}:
        return True
    if access in {"*", "read"} and interaction in {"read", "search", "vread", "history"}:
        return True
    letters = _V2_LETTERS.get(interaction, "")
    return bool(access) and set(access) <= set("cruds") and any(c in access for c in letters)
