"""Third-party FHIR clients work against the server unchanged (no adapters, no settings).

- fhirclient (SMART's Python client) reads /metadata first and parses it strictly;
- fhirpy sends `Content-Type: application/json`.
Both run against the real server over HTTP (uvicorn), not in-process.
"""

from __future__ import annotations

import pytest
from fhirclient import client as smart_client
from fhirclient.models.humanname import HumanName
from fhirclient.models.identifier import Identifier
from fhirclient.models.patient import Patient
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

MRN = "urn:test:mrn"


def test_fhirclient_create_read_update_delete(live_server: str) -> None:
    smart = smart_client.FHIRClient(settings={"app_id": "ipt-tests", "api_base": live_server})
    assert smart.server is not None
    smart.server.get_capability()  # the strict parse of /metadata
    assert smart.server.capabilityStatement.fhirVersion == "4.0.1"

    patient = Patient({"gender": "female"})
    name = HumanName()
    name.family, name.given = "Okafor", ["Ngozi"]
    patient.name = [name]
    created = patient.create(smart.server)
    assert created is not None
    patient_id = created["id"]

    fetched = Patient.read(patient_id, smart.server)
    assert fetched.name[0].family == "Okafor"
    fetched.gender = "other"
    fetched.update(smart.server)
    assert Patient.read(patient_id, smart.server).gender == "other"
    assert Patient.read(patient_id, smart.server).meta.versionId == "2"

    fetched.delete(smart.server)
    with pytest.raises(Exception, match="410"):
        Patient.read(patient_id, smart.server)


def test_fhirclient_conditional_update(live_server: str) -> None:
    smart = smart_client.FHIRClient(settings={"app_id": "ipt-tests", "api_base": live_server})
    assert smart.server is not None
    patient = Patient({"gender": "male"})
    identifier = Identifier()
    identifier.system, identifier.value = MRN, "fc-1"
    patient.identifier = [identifier]
    path = f"Patient?identifier={MRN}|fc-1"
    first = smart.server.put_json(path, patient.as_json())
    second = smart.server.put_json(path, {**patient.as_json(), "gender": "unknown"})
    assert first.status_code == 201
    assert second.status_code == 200
    assert first.json()["id"] == second.json()["id"]


def test_fhirpy_create_read_update_conditional_update_delete(live_server: str) -> None:
    fhir = SyncFHIRClient(live_server)
    patient = fhir.resource(
        "Patient", name=[{"family": "Lindqvist"}], identifier=[{"system": MRN, "value": "py-1"}]
    )
    patient.save()  # POST with Content-Type: application/json
    assert patient.id
    patient_id = patient.id

    fetched = fhir.reference("Patient", patient_id).to_resource()
    assert fetched["name"][0]["family"] == "Lindqvist"
    fetched["gender"] = "female"
    fetched.save()  # PUT
    assert fhir.reference("Patient", patient_id).to_resource()["meta"]["versionId"] == "2"

    updated, created = (
        fhir.resources("Patient")
        .search(identifier=f"{MRN}|py-1")
        .update(
            fhir.resource("Patient", identifier=[{"system": MRN, "value": "py-1"}], gender="other")
        )
    )
    assert not created
    assert updated.id == patient_id
    assert updated["gender"] == "other"

    fetched.delete()  # type: ignore[no-untyped-call]
    with pytest.raises(ResourceNotFound):
        fhir.reference("Patient", patient_id).to_resource()
