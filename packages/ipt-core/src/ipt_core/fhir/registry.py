"""The one registry of resource types the store serves and the search parameters of each.

The CapabilityStatement, the OpenAPI document, the search index and search itself are all
generated from these definitions, so adding a parameter here is the whole change. The store
knows FHIR only: parameters of a profile (the IPT `careplan` link of sessions) are added by the
composition root (`ipt_core.composition`) with `register_search_params` before a process serves
anything (docs/architecture.md#layers-and-packages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

__all__ = [
    "COMMON_PARAMS",
    "REGISTRY",
    "ResourceDefinition",
    "SearchParam",
    "SearchParamType",
    "definition_of",
    "register_search_params",
]

SearchParamType = Literal["token", "string", "date", "reference", "number", "quantity", "uri"]


@dataclass(frozen=True)
class SearchParam:
    """A search parameter: its name, type, where its values are and what it may point to.

    `paths` use a small FHIRPath subset: dotted element names, `[x]` choice elements and
    `extension(url)` steps, e.g. `Encounter.extension(http://…).valueReference`.
    """

    name: str
    type: SearchParamType
    paths: tuple[str, ...]
    description: str
    targets: tuple[str, ...] = ()
    definition: str | None = None  # canonical URL when the parameter is not from the spec


@dataclass(frozen=True)
class ResourceDefinition:
    """A resource type the store accepts, with its search parameters by name."""

    type: str
    params: Mapping[str, SearchParam]

    @property
    def has_identifier(self) -> bool:
        """Whether resources of this type can be found by business identifier."""
        return "identifier" in self.params


def _token(name: str, path: str, description: str) -> SearchParam:
    return SearchParam(name, "token", (path,), description)


def _ref(name: str, path: str, description: str, *targets: str) -> SearchParam:
    return SearchParam(name, "reference", (path,), description, targets)


def _date(name: str, description: str, *paths: str) -> SearchParam:
    return SearchParam(name, "date", paths, description)


def _subject(resource_type: str, path: str | None = None) -> tuple[SearchParam, ...]:
    where = path or f"{resource_type}.subject"
    return (
        _ref("patient", where, "Who the resource is about, when a Patient", "Patient"),
        _ref("subject", where, "Who the resource is about", "Patient", "Group"),
    )


def _identifier(resource_type: str) -> SearchParam:
    return _token("identifier", f"{resource_type}.identifier", "A business identifier")


def _human_names(resource_type: str) -> tuple[SearchParam, ...]:
    return (
        SearchParam("name", "string", (f"{resource_type}.name",), "Any part of a name"),
        SearchParam("family", "string", (f"{resource_type}.name.family",), "Family name"),
        SearchParam("given", "string", (f"{resource_type}.name.given",), "Given name"),
    )


_PARAMS: dict[str, tuple[SearchParam, ...]] = {
    "Patient": (
        _identifier("Patient"),
        *_human_names("Patient"),
        _date("birthdate", "The patient's date of birth", "Patient.birthDate"),
        _token("gender", "Patient.gender", "Gender of the patient"),
    ),
    "Practitioner": (_identifier("Practitioner"), *_human_names("Practitioner")),
    "Condition": (
        _identifier("Condition"),
        *_subject("Condition"),
        _token("code", "Condition.code", "Code for the condition"),
        _token("clinical-status", "Condition.clinicalStatus", "The clinical status"),
        _token("category", "Condition.category", "The category of the condition"),
        _date("onset-date", "Date of onset", "Condition.onset[x]"),
    ),
    "CarePlan": (
        _identifier("CarePlan"),
        *_subject("CarePlan"),
        _token("status", "CarePlan.status", "draft | active | on-hold | revoked | completed …"),
        _token("intent", "CarePlan.intent", "proposal | plan | order | option"),
        _token("category", "CarePlan.category", "Type of plan"),
        _date("date", "Time period the plan covers", "CarePlan.period"),
        _ref("goal", "CarePlan.goal", "Desired outcome of the plan", "Goal"),
        _ref("condition", "CarePlan.addresses", "Health issues the plan addresses", "Condition"),
        _ref("based-on", "CarePlan.basedOn", "Fulfills CarePlan", "CarePlan"),
        _token("activity-code", "CarePlan.activity.detail.code", "Detail type of activity"),
    ),
    "Goal": (
        _identifier("Goal"),
        *_subject("Goal"),
        _token("lifecycle-status", "Goal.lifecycleStatus", "proposed | planned | active …"),
        _token("achievement-status", "Goal.achievementStatus", "in-progress | improving …"),
        _token("category", "Goal.category", "The category of the goal"),
        _date("target-date", "Reach the goal on or before", "Goal.target.due[x]"),
    ),
    "Encounter": (
        _identifier("Encounter"),
        *_subject("Encounter"),
        _token("status", "Encounter.status", "planned | arrived | … | finished | cancelled"),
        _token("class", "Encounter.class", "Classification of the encounter"),
        _token("type", "Encounter.type", "Specific type of encounter"),
        _date("date", "A date within the encounter's period", "Encounter.period"),
        _ref("appointment", "Encounter.appointment", "The booked appointment", "Appointment"),
        _ref(
            "participant",
            "Encounter.participant.individual",
            "Persons involved in the encounter other than the patient",
            "Practitioner",
            "PractitionerRole",
            "RelatedPerson",
        ),
    ),
    "Appointment": (
        _identifier("Appointment"),
        _ref("patient", "Appointment.participant.actor", "A patient taking part", "Patient"),
        _ref(
            "actor",
            "Appointment.participant.actor",
            "Any participant",
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "RelatedPerson",
            "Device",
            "HealthcareService",
            "Location",
        ),
        _token("status", "Appointment.status", "The overall status of the appointment"),
        _date("date", "Appointment date/time", "Appointment.start"),
        _token("service-type", "Appointment.serviceType", "The specific service"),
    ),
    "Observation": (
        _identifier("Observation"),
        *_subject("Observation"),
        _token("code", "Observation.code", "The code of the observation type"),
        _token("category", "Observation.category", "The classification of the observation"),
        _date("date", "Obtained date/time", "Observation.effective[x]"),
        _token("status", "Observation.status", "The status of the observation"),
        _ref(
            "encounter",
            "Observation.encounter",
            "Encounter related to the observation",
            "Encounter",
        ),
        _ref("focus", "Observation.focus", "What the observation is about, when not the subject"),
        SearchParam(
            "value-quantity",
            "quantity",
            ("Observation.valueQuantity", "Observation.valueInteger"),
            "The value of the observation (a PHQ-9 integer counts as a unitless quantity)",
        ),
    ),
}

_DEFINITIONS: dict[str, ResourceDefinition] = {
    name: ResourceDefinition(name, {p.name: p for p in params}) for name, params in _PARAMS.items()
}
REGISTRY: Mapping[str, ResourceDefinition] = MappingProxyType(_DEFINITIONS)
"""Every served type by name (read-only; profiles add parameters with `register_search_params`)."""


def register_search_params(resource_type: str, *params: SearchParam) -> None:
    """Serve `params` on `resource_type` too (idempotent: registering the same one is a no-op).

    Raises:
        KeyError: when the store does not serve `resource_type`.
        ValueError: when a different parameter of that name is already served.
    """
    definition = _DEFINITIONS[resource_type]
    merged = dict(definition.params)
    for param in params:
        known = merged.get(param.name)
        if known is not None and known != param:
            raise ValueError(f"{resource_type} already has a different {param.name!r} parameter")
        merged[param.name] = param
    _DEFINITIONS[resource_type] = replace(definition, params=MappingProxyType(merged))


# Parameters of every type, answered from the `resource` table rather than the index tables.
COMMON_PARAMS: Mapping[str, SearchParam] = {
    "_id": SearchParam(
        "_id",
        "token",
        ("Resource.id",),
        "Logical id of this resource",
        definition="http://hl7.org/fhir/SearchParameter/Resource-id",
    ),
    "_lastUpdated": SearchParam(
        "_lastUpdated",
        "date",
        ("Resource.meta.lastUpdated",),
        "When the resource version last changed",
        definition="http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
    ),
}


def definition_of(resource_type: str) -> ResourceDefinition | None:
    """Return the definition of `resource_type`, or None when the store does not serve it."""
    return REGISTRY.get(resource_type)
