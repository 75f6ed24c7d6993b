"""PHQ-9 <-> Observation and treated conditions -> Condition (docs/fhir-mapping.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipt_core.ipt import (
    Phq9,
    condition_resource,
    icd10cm_codes,
    is_phq9_total,
    is_recurrent_depression,
    phq9_from_observation,
    phq9_item9,
    phq9_to_observation,
    phq9_total,
    treated_condition,
)
from tests.unit.ipt.support import FhirCheck, fhir_ids, instants

scores = st.builds(
    Phq9,
    patient=fhir_ids.map("Patient/{}".format),
    total=st.integers(0, 27),
    item9=st.none() | st.integers(0, 3),
    effective=instants,
    status=st.sampled_from(["final", "amended", "corrected"]),
    id=st.none() | fhir_ids,
    encounter_id=st.none() | fhir_ids,
    goal_id=st.none() | fhir_ids,
)


@given(phq9=scores)
def test_phq9_round_trips_through_observation(phq9: Phq9) -> None:
    observation = json.loads(json.dumps(phq9_to_observation(phq9)))
    assert phq9_from_observation(observation) == phq9


@settings(deadline=None)
@given(phq9=scores)
def test_every_phq9_observation_is_valid_r4(phq9: Phq9, valid_r4: FhirCheck) -> None:
    valid_r4(phq9_to_observation(phq9))


def test_phq9_observation_follows_the_mapping() -> None:
    effective = datetime(2026, 2, 2, 9, tzinfo=UTC)
    phq9 = Phq9(patient="Patient/p1", total=12, item9=1, effective=effective, goal_id="g-1")

    observation = phq9_to_observation(phq9)

    assert observation["status"] == "final"
    assert observation["category"][0]["coding"][0]["code"] == "survey"
    assert observation["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "44261-6",
        "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    }
    assert observation["effectiveDateTime"] == "2026-02-02T09:00:00Z"
    assert observation["valueInteger"] == 12
    assert observation["component"][0]["code"]["coding"][0]["code"] == "44260-8"
    assert observation["component"][0]["valueInteger"] == 1
    assert observation["focus"] == [{"reference": "Goal/g-1"}]
    assert is_phq9_total(observation)


@pytest.mark.parametrize(
    ("value", "total"),
    [
        ({"valueInteger": 9}, 9),
        ({"valueQuantity": {"value": 9}}, 9),
        ({"valueQuantity": {"value": 9.0, "unit": "{score}"}}, 9),
        ({"valueQuantity": {"value": 9.5}}, None),
        ({"valueInteger": 28}, None),
        ({"valueInteger": -1}, None),
        ({"valueInteger": True}, None),
        ({"valueString": "9"}, None),
        ({}, None),
    ],
)
def test_phq9_total_reads_integers_only(value: dict[str, Any], total: int | None) -> None:
    assert phq9_total({"resourceType": "Observation"} | value) == total


def test_item9_reads_a_separate_observation_too() -> None:
    item9 = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "44260-8"}]},
        "valueInteger": 2,
    }
    assert phq9_item9(item9) == 2
    assert phq9_item9({"resourceType": "Observation", "valueInteger": 2}) is None


@pytest.mark.parametrize(
    ("icd10cm", "snomed"),
    [
        ("F32.1", "370143000"),
        ("F33.0", "370143000"),
        ("F34.1", "78667006"),
        ("F31.81", "13746004"),
        ("F60.3", "20010003"),
        ("F41.0", "371631005"),
        ("F50.00", "72366004"),
        ("F10.20", "66214007"),
        ("F19.10", "66214007"),
        ("F06.31", None),
        ("Z63.0", None),
        ("F43.81", None),
        ("Z63.6", None),
        ("B20", None),
    ],
)
def test_condition_sends_snomed_with_icd10cm_where_both_exist(
    icd10cm: str, snomed: str | None, valid_r4: FhirCheck
) -> None:
    condition = condition_resource("Patient/p1", icd10cm, "c-1")

    valid_r4(condition)
    systems = {c["system"]: c["code"] for c in condition["code"]["coding"]}
    assert systems.get("http://hl7.org/fhir/sid/icd-10-cm") == icd10cm
    assert systems.get("http://snomed.info/sct") == snomed
    assert icd10cm_codes(condition) == [icd10cm]


def test_unknown_icd10cm_code_is_kept_alone() -> None:
    condition = condition_resource("Patient/p1", "J45.909")

    assert treated_condition("J45.909") is None
    assert len(condition["code"]["coding"]) == 1
    assert "id" not in condition


def test_recurrent_depression_is_an_f33_code() -> None:
    single = condition_resource("Patient/p1", "F32.1")
    recurrent = condition_resource("Patient/p1", "F33.1")
    withdrawn = recurrent | {
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "entered-in-error",
                }
            ]
        }
    }

    assert is_recurrent_depression([single, recurrent])
    assert not is_recurrent_depression([single])
    assert not is_recurrent_depression([withdrawn])
    assert not is_recurrent_depression([])
