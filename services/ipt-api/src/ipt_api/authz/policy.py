"""The authorizer: every check of what a caller may reach, made before anything is resolved.

Scopes decide the types and interactions (`Principal.may`); a `patient/` scope further limits
the caller to one Patient's compartment (see `compartment`). A search is planned here before
it runs: the searched type, every chained target and `_has` source must be searchable (403
otherwise, so no count can reveal what the caller may not read); `_include`/`_revinclude`
targets the caller may not read are dropped with a warning; a compartment caller's search is
filtered to the compartment. Another patient's resource answers 404, never 403.

Every check is noted on the request's audit trail (who, what, which parameter names).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_api.audit.trail import Access, current_trail
from ipt_api.authz.compartment import (
    COMPARTMENT_PARAMS,
    compartment_clause,
    in_compartment,
    in_compartment_types,
    stored_patients,
)
from ipt_api.principal import Principal
from ipt_core.fhir.errors import Issue, NotAuthorized, ResourceGone, ResourceNotFound
from ipt_core.fhir.model import StoredResource
from ipt_core.fhir.registry import REGISTRY
from ipt_core.fhir.search import (
    ChainClause,
    Clause,
    HasClause,
    Include,
    SearchQuery,
    parse_search,
)
from ipt_core.fhir.store import DriverReads, ResourceStore

__all__ = [
    "authorize",
    "authorize_criteria",
    "check_reach",
    "compartment_criteria",
    "plan_search",
    "read_visible",
    "require_course",
    "require_visible",
    "require_writable",
    "visible",
    "visible_included",
]

# Audit subtypes that are checked against the scopes as another interaction.
_SCOPE_INTERACTION = {"history-type": "history", "history-system": "history", "operation": "read"}


def authorize(
    principal: Principal,
    resource_type: str,
    interaction: str,
    *,
    id_: str | None = None,
    names: Iterable[str] = (),
) -> None:
    """Refuse (403) an interaction the caller's scopes do not grant; note it for the audit."""
    trail = current_trail()
    if trail is not None:
        trail.principal = principal
        audited_type = None if resource_type == "*" else resource_type
        trail.note(Access(interaction, audited_type, id_, query_names=tuple(sorted(set(names)))))
    if not principal.may(resource_type, _SCOPE_INTERACTION.get(interaction, interaction)):
        raise NotAuthorized(f"The token's scopes do not allow {interaction} on {resource_type}")


def plan_search(principal: Principal, query: SearchQuery, names: Sequence[str]) -> SearchQuery:
    """Authorize `query`'s whole type reach and return it as the caller may run it.

    Raises:
        NotAuthorized: when the searched type, a chained target or a `_has` source is not
            searchable with the caller's scopes (checked before any query runs).
    """
    authorize(principal, query.resource_type, "search", names=names)
    check_reach(principal, query.clauses)
    includes, dropped = _allowed(principal, query.includes)
    revincludes, dropped_reverse = _allowed(principal, query.revincludes)
    issues = [
        Issue(
            "forbidden",
            f"{spec_name}: the token may not read {reached}; those resources are left out",
            (spec_name,),
            severity="warning",
        )
        for spec_name, reached in (*dropped, *dropped_reverse)
    ]
    clauses = query.clauses
    patient = principal.compartment
    if patient is not None:
        limit = compartment_clause(query.resource_type, patient)
        if limit is not None:
            clauses = (*clauses, limit)
    if not issues and clauses is query.clauses:
        return query  # the caller may run it as asked (includes dropped would be issues)
    return replace(
        query,
        clauses=clauses,
        includes=includes,
        revincludes=revincludes,
        issues=(*query.issues, *issues),
    )


def check_reach(principal: Principal, clauses: Iterable[Clause]) -> None:
    """Refuse (403) chains and `_has` into types the caller may not search."""
    for clause in clauses:
        if isinstance(clause, ChainClause):
            for target in clause.inner:
                _reach(principal, target, f"chained parameter {clause.param.name}")
                if principal.compartment is not None and target in in_compartment_types():
                    # The chained resource may be another patient's (an Appointment has many
                    # actors): matching on it would tell something about that patient.
                    raise NotAuthorized(
                        f"Chains into {target} are not available with patient/ scopes"
                    )
        elif isinstance(clause, HasClause):
            if principal.compartment is not None:
                # A `_has` source outside the compartment would tell whether another
                # patient's resource refers to this one.
                raise NotAuthorized("_has is not available with patient/ scopes")
            _reach(principal, clause.source_type, "_has")


def authorize_criteria(principal: Principal, resource_type: str, criteria: str) -> None:
    """Authorize what conditional criteria (`If-None-Exist`, `Type?…`) reach, before matching."""
    query = parse_search(resource_type, parse_qsl(criteria, keep_blank_values=True))
    check_reach(principal, query.clauses)


def compartment_criteria(principal: Principal, resource_type: str, criteria: str) -> str:
    """Conditional-write criteria as a compartment caller may match them: within its patient.

    So a conditional update, patch or delete never finds another patient's resource (which
    would answer differently from "no match" and reveal it exists).
    """
    patient = principal.compartment
    name = "_id" if resource_type == "Patient" else COMPARTMENT_PARAMS.get(resource_type)
    if patient is None or name is None:
        return criteria  # the write guard refuses writes of types outside the compartment
    value = patient if resource_type == "Patient" else f"Patient/{patient}"
    limit = urlencode({name: value})
    return criteria if criteria.endswith(f"&{limit}") else f"{criteria}&{limit}"


def _reach(principal: Principal, resource_type: str, how: str) -> None:
    if not principal.may(resource_type, "search"):
        trail = current_trail()
        if trail is not None:
            trail.note(Access("search", resource_type))
        raise NotAuthorized(f"The token's scopes do not allow searching {resource_type} ({how})")


def _allowed(
    principal: Principal, specs: Sequence[Include]
) -> tuple[tuple[Include, ...], list[tuple[str, str]]]:
    kept: list[Include] = []
    dropped: list[tuple[str, str]] = []
    for spec in specs:
        name = (
            f"{'_revinclude' if spec.reverse else '_include'}={spec.source_type}:{spec.param.name}"
        )
        if spec.reverse:
            if principal.may(spec.source_type, "search"):
                kept.append(spec)
            else:
                dropped.append((name, spec.source_type))
            continue
        targets = (spec.target_type,) if spec.target_type else _targets(spec)
        readable = [t for t in targets if principal.may(t, "search")]
        dropped += [(name, t) for t in targets if t not in readable]
        if spec.target_type or len(readable) == len(targets):
            if readable:
                kept.append(spec)
        else:  # follow the parameter to the readable targets only
            kept += [replace(spec, target_type=t) for t in readable]
    return tuple(kept), dropped


def _targets(spec: Include) -> tuple[str, ...]:
    targets = spec.param.targets or tuple(REGISTRY)
    return tuple(t for t in targets if t in REGISTRY)


def require_visible(principal: Principal, stored: StoredResource) -> StoredResource:
    """Return `stored` when the caller's compartment (if any) holds it; 404 otherwise."""
    if not visible(principal, stored):
        raise ResourceNotFound(f"{stored.resource_type}/{stored.id} is not known")
    return stored


def visible(principal: Principal, stored: StoredResource) -> bool:
    """Whether the caller's compartment (if any) holds `stored`."""
    patient = principal.compartment
    if patient is None or stored.resource_type not in in_compartment_types():
        return True
    return in_compartment(stored, patient)


def visible_included(
    principal: Principal, included: Sequence[StoredResource]
) -> list[StoredResource]:
    """The included resources the caller may see (readable type, in the compartment)."""
    return [
        stored
        for stored in included
        if principal.may(stored.resource_type, "search") and visible(principal, stored)
    ]


async def read_visible(
    store: ResourceStore | DriverReads,
    principal: Principal,
    resource_type: str,
    id_: str,
    version: str | None = None,
) -> StoredResource:
    """Read (or vread) a resource the caller may see; another patient's answers 404."""
    try:
        if version is not None:
            stored = await store.vread(resource_type, id_, version)
        else:
            stored = await store.read(resource_type, id_)
    except ResourceGone:
        if principal.compartment is not None and resource_type in in_compartment_types():
            raise ResourceNotFound(f"{resource_type}/{id_} is not known") from None
        raise
    require_visible(principal, stored)
    trail = current_trail()
    if trail is not None:
        patient = min(stored_patients(stored), default=None)  # the first, if several
        if patient is not None:
            trail.attach_patient(resource_type, id_, patient)
    return stored


async def require_writable(
    store: ResourceStore, principal: Principal, resource_type: str, id_: str
) -> None:
    """For a compartment caller, 404 before writing over another patient's resource.

    Checked before the write so that neither a failed `If-Match` nor a validation error
    tells the caller whether the resource exists (the write guard checks again in the
    write's transaction).
    """
    if principal.compartment is None:
        return
    try:
        stored = await store.read(resource_type, id_)
    except (ResourceNotFound, ResourceGone):
        return
    require_visible(principal, stored)


async def require_course(conn: AsyncConnection, principal: Principal, course_id: str) -> None:
    """For a compartment caller, 404 unless the course's CarePlan is in the compartment."""
    if principal.compartment is None:
        return
    await read_visible(ResourceStore(conn), principal, "CarePlan", course_id)
