"""Which resources an export holds: one keyset-paged statement per resource type.

- system level: every current resource of the type.
- patient level: the resources of the Patient compartment (the Patient itself, and resources
  whose `subject`/`patient` reference names a Patient).
- group level: the same, for the Patients of a derived Group: `ipt-therapist-<Practitioner
  id>` or `ipt-organization-<Organization id>`, the patients with an IPT course of that
  therapist or organization (docs/analytics.md).

Every level keeps resources last updated in (`_since`, transaction time] and, for a type
with `_typeFilter` queries, those matching at least one of them (the search engine's own
conditions). Pages are ordered by id, so a checkpoint is just the last id written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl

from sqlalchemy import ColumnElement, Select, and_, exists, literal, or_, select

from ipt_core.bulk._jobs import ExportJob
from ipt_core.db.schema import ipt_course, resource, search_reference
from ipt_core.fhir.search import matching, parse_search

__all__ = ["COMPARTMENT_PARAMS", "group_patients", "parse_type_filter", "selection"]

# The reference parameters that put a resource of each type in a Patient's compartment.
COMPARTMENT_PARAMS: Final[Mapping[str, tuple[str, ...]]] = {
    "Patient": (),
    "CarePlan": ("subject",),
    "Condition": ("subject",),
    "Goal": ("subject",),
    "Encounter": ("subject",),
    "Observation": ("subject",),
    "Appointment": ("patient",),
}
_GROUP_KINDS: Final = {
    "ipt-therapist-": (ipt_course.c.therapist_ref, "Practitioner/"),
    "ipt-organization-": (ipt_course.c.organization_ref, "Organization/"),
}


def group_patients(group_id: str) -> Select[Any] | None:
    """The patient ids of a derived Group, or None when the id names no derived Group."""
    for prefix, (column, reference) in _GROUP_KINDS.items():
        if group_id.startswith(prefix) and len(group_id) > len(prefix):
            target = reference + group_id[len(prefix) :]
            return select(ipt_course.c.patient_id).where(column == target)
    return None


def parse_type_filter(resource_type: str, query: str) -> list[ColumnElement[bool]]:
    """The conditions of one `_typeFilter` query (`InvalidRequest` when it is not valid)."""
    parsed = parse_search(resource_type, parse_qsl(query, keep_blank_values=True), strict=True)
    return matching(parsed)


def selection(
    job: ExportJob, resource_type: str, *, after_id: str | None, limit: int
) -> Select[Any]:
    """The next `limit` resources of `resource_type` in `job`, after id `after_id`."""
    r = resource
    conditions: list[ColumnElement[bool]] = [
        r.c.resource_type == resource_type,
        r.c.deleted.is_(False),
        r.c.last_updated <= job.transaction_time,
    ]
    if job.since is not None:
        conditions.append(r.c.last_updated > job.since)
    if after_id is not None:
        conditions.append(r.c.id > after_id)
    filters = job.type_filters.get(resource_type, [])
    if filters:
        conditions.append(or_(*(and_(*parse_type_filter(resource_type, q)) for q in filters)))
    if job.level != "system":
        conditions.append(_in_compartment(resource_type, _patients(job)))
    return select(r.c.id, r.c.content).where(*conditions).order_by(r.c.id).limit(limit)


def _patients(job: ExportJob) -> Select[Any] | None:
    if job.level == "group" and job.group_id is not None:
        patients = group_patients(job.group_id)
        # An unknown group is refused at kick-off; if it vanished since, it has no members.
        return patients if patients is not None else select(literal("")).where(literal(False))
    return None  # patient level: every Patient


def _in_compartment(resource_type: str, patients: Select[Any] | None) -> ColumnElement[bool]:
    r = resource
    if resource_type == "Patient":
        return r.c.id.in_(patients) if patients is not None else literal(True)
    params: Sequence[str] = COMPARTMENT_PARAMS.get(resource_type, ())
    if not params:
        return literal(False)
    s = search_reference
    link = [
        s.c.resource_type == resource_type,
        s.c.resource_id == r.c.id,
        s.c.param.in_(params),
        s.c.target_type == "Patient",
    ]
    if patients is not None:
        link.append(s.c.target_id.in_(patients))
    return exists().where(*link)
