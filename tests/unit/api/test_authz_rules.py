"""Scope and compartment rules without a database: who may reach which type and patient."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from ipt_api.authz.compartment import compartment_clause, in_compartment, patients_of
from ipt_api.principal import DEVELOPMENT_PRINCIPAL, Principal
from ipt_core.audit import AuditRecord, audit_event_json
from ipt_core.fhir.model import StoredResource


def _principal(*scopes: str, patient: str | None = None) -> Principal:
    return Principal("someone", frozenset(scopes), patient=patient)


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        (("system/AuditEvent.rs",), True),
        (("user/AuditEvent.read",), True),
        (("system/*.*",), False),
        (("system/*.read",), False),
        (("patient/AuditEvent.rs",), False),
        (("system/Patient.rs",), False),
    ],
)
def test_the_audit_trail_is_granted_by_name_only(scopes: tuple[str, ...], allowed: bool) -> None:
    assert _principal(*scopes).may("AuditEvent", "search") is allowed


def test_local_development_may_read_the_audit_trail() -> None:
    assert DEVELOPMENT_PRINCIPAL.may("AuditEvent", "read")
    assert DEVELOPMENT_PRINCIPAL.compartment is None


def test_any_patient_scope_limits_the_token_to_its_compartment() -> None:
    assert _principal("system/*.rs").compartment is None
    assert _principal("patient/*.rs", patient="p1").compartment == "p1"
    assert _principal("user/*.rs", "patient/Observation.rs", patient="p1").compartment == "p1"
    assert _principal("patient/*.rs").compartment == ""  # no claim: nobody's compartment


def _stored(resource: dict[str, object]) -> StoredResource:
    type_, id_ = str(resource["resourceType"]), str(resource.get("id", "x"))
    content = orjson.dumps(resource).decode()
    return StoredResource(type_, id_, 1, datetime.now(UTC), False, content)


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}},
        {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}},
        {"resourceType": "CarePlan", "subject": {"reference": "Patient/p1"}},
        {"resourceType": "Goal", "subject": {"reference": "Patient/p1"}},
        {"resourceType": "Encounter", "subject": {"reference": "Patient/p1"}},
        {
            "resourceType": "Appointment",
            "participant": [
                {"actor": {"reference": "Practitioner/t1"}},
                {"actor": {"reference": "Patient/p1"}},
            ],
        },
        {"resourceType": "Patient", "id": "p1"},
    ],
)
def test_the_compartment_links_each_type_to_its_patient(resource: dict[str, object]) -> None:
    assert patients_of(str(resource["resourceType"]), resource) == {"p1"}
    assert in_compartment(_stored(resource), "p1")
    assert not in_compartment(_stored(resource), "p2")
    assert compartment_clause(str(resource["resourceType"]), "p1") is not None


def test_practitioners_and_group_subjects_are_in_no_compartment() -> None:
    assert patients_of("Practitioner", {"resourceType": "Practitioner", "id": "t1"}) == set()
    group = {"resourceType": "Observation", "subject": {"reference": "Group/p1"}}
    assert patients_of("Observation", group) == set()
    assert compartment_clause("Practitioner", "p1") is None


def test_a_search_is_audited_with_parameter_names_not_values() -> None:
    record = AuditRecord(
        "a1",
        datetime(2026, 3, 4, tzinfo=UTC),
        "search",
        0,
        "dr-who",
        entity_type="Patient",
        query_names=("family", "identifier"),
        patient_scope="p1",
    )
    event = audit_event_json(record)
    assert (event["action"], event["subtype"][0]["code"], event["outcome"]) == (
        "E",
        "search-type",
        "0",
    )
    query, patient = event["entity"]
    assert query["detail"] == [{"type": "parameter-names", "valueString": "family,identifier"}]
    assert patient["what"] == {"reference": "Patient/p1"}


@pytest.mark.parametrize("interaction", ["read", "search", "create", "delete", "operation"])
def test_audit_events_are_valid_fhir(interaction: str) -> None:
    record = AuditRecord(
        "a2",
        datetime(2026, 3, 4, tzinfo=UTC),
        interaction,
        4,
        "dr-who",
        client_id="ehr-app",
        source_address="10.0.0.7",
        entity_type="Observation",
        entity_id=None if interaction == "search" else "o1",
        version_id=2 if interaction == "create" else None,
        query_names=("code",),
        patient_id="p1",
        outcome_status=403,
    )
    get_fhir_model_class("AuditEvent").model_validate(audit_event_json(record))
