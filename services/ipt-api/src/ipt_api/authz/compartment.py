"""The Patient compartment: which resources belong to one patient's record.

Follows FHIR R4's Patient CompartmentDefinition for the types this server stores, through
the search parameters the registry indexes: Observation, Condition, CarePlan, Goal and
Encounter by `patient` (their subject), Appointment by `patient` (a participant actor),
and the Patient itself by id. Practitioner is in no patient's compartment.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from ipt_core.fhir.index import ReferenceEntry, param_entries
from ipt_core.fhir.model import StoredResource
from ipt_core.fhir.registry import COMMON_PARAMS, REGISTRY
from ipt_core.fhir.search import Clause, ReferenceValue, TokenValue, ValueClause, search_param

__all__ = [
    "COMPARTMENT_PARAMS",
    "compartment_clause",
    "in_compartment",
    "in_compartment_types",
    "patients_of",
    "stored_patients",
]

# type -> the reference parameter that links it to the patient (Patient: its own id).
COMPARTMENT_PARAMS: Final[dict[str, str]] = {
    "Observation": "patient",
    "Condition": "patient",
    "CarePlan": "patient",
    "Goal": "patient",
    "Encounter": "patient",
    "Appointment": "patient",
}


def in_compartment_types() -> frozenset[str]:
    """The types that belong to a patient's compartment (Patient included)."""
    return frozenset({"Patient", *COMPARTMENT_PARAMS})


def patients_of(resource_type: str, resource: dict[str, Any]) -> set[str]:
    """The ids of the Patients whose compartment `resource` is in."""
    if resource_type == "Patient":
        id_ = resource.get("id")
        return {id_} if isinstance(id_, str) else set()
    name = COMPARTMENT_PARAMS.get(resource_type)
    definition = REGISTRY.get(resource_type)
    if name is None or definition is None:
        return set()
    # That parameter's references only: every read of a compartment type asks (the audit
    # names the patient), and indexing the whole resource cost ~40% of such a read's CPU.
    return {
        entry.target_id
        for entry in param_entries(definition.params[name], resource)
        if isinstance(entry, ReferenceEntry) and entry.target_type == "Patient"
    }


def stored_patients(stored: StoredResource) -> set[str]:
    """The ids of the Patients whose compartment the stored version is in."""
    if stored.resource_type == "Patient":
        return {stored.id}  # its own: no need to parse the body
    if stored.content is None:
        return set()  # a deletion marker shows nothing of whose it was
    return patients_of(stored.resource_type, orjson.loads(stored.content))


def in_compartment(stored: StoredResource, patient_id: str) -> bool:
    """Whether the stored version belongs to `patient_id`'s compartment."""
    return patient_id in stored_patients(stored)


def compartment_clause(resource_type: str, patient_id: str) -> Clause | None:
    """The search clause limiting `resource_type` to the compartment (None: not in it)."""
    if resource_type == "Patient":
        return ValueClause(COMMON_PARAMS["_id"], None, (TokenValue(None, patient_id, False),))
    name = COMPARTMENT_PARAMS.get(resource_type)
    param = search_param(resource_type, name) if name else None
    if param is None:
        return None
    return ValueClause(param, None, (ReferenceValue("Patient", patient_id),))
