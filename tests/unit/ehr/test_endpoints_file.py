"""The endpoints file: a bad entry stops the process with a message naming entry and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ipt_core.ehr.capabilities import parse_capabilities
from ipt_core.ehr.endpoints import EndpointsFileError, load_endpoints, parse_endpoints

GOOD = """
endpoints:
  - name: epic-prod
    base_url: https://ehr.example.org/fhir/R4/
    auth: {type: bearer, token_env: EPIC_TOKEN}
    patient_identifier_system: "urn:oid:2.16.840.1.113883.19.5"
    push: [Observation, Encounter]
  - name: test-ehr
    base_url: http://127.0.0.1:8090/fhir
    auth: {type: none}
    patient_identifier_system: "urn:oid:1.2.3"
"""


def test_a_good_file_loads_with_defaults_and_secrets(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(GOOD)
    epic, test = load_endpoints(path, {"EPIC_TOKEN": "s3cret"})
    assert epic.base_url == "https://ehr.example.org/fhir/R4"
    assert epic.host == "ehr.example.org"
    assert epic.push == ("Observation", "Encounter")
    assert test.pull == ("Encounter", "Appointment", "Observation")
    assert "s3cret" not in str(epic.public_view())
    assert epic.public_view()["auth"] == {"type": "bearer", "token_env": "EPIC_TOKEN"}


def entry(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "epic-prod",
        "base_url": "https://ehr.example.org/fhir",
        "auth": {"type": "none"},
        "patient_identifier_system": "urn:x",
    }
    return base | changes


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Epic Prod"}, r"endpoints\[0\] \(Epic Prod\): field name"),
        ({"base_url": "ftp://x"}, r"endpoints\[0\] \(epic-prod\): field base_url"),
        ({"auth": {"type": "magic"}}, r"endpoints\[0\] \(epic-prod\): field auth"),
        ({"auth": {"type": "bearer"}}, r"field auth.token_env"),
        ({"push": ["Patient"]}, r"field push.0"),
        ({"pull_interval_s": 0}, r"field pull_interval_s"),
        ({"colour": "blue"}, r"field colour"),
        ({"auth": {"type": "bearer", "token_env": "MISSING"}}, r"MISSING is not set"),
    ],
)
def test_a_bad_entry_is_named_with_its_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(EndpointsFileError, match=message):
        parse_endpoints({"endpoints": [entry(**changes)]}, {})


def test_names_are_unique(tmp_path: Path) -> None:
    with pytest.raises(EndpointsFileError, match=r"endpoints\[1\] \(epic-prod\): field name"):
        parse_endpoints({"endpoints": [entry(), entry()]}, {})


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(EndpointsFileError, match="cannot be read"):
        load_endpoints(tmp_path / "missing.yaml", {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoints: [\n")
    with pytest.raises(EndpointsFileError, match="not valid YAML"):
        load_endpoints(bad, {})


def test_the_capability_statement_decides_the_push_set() -> None:
    statement = {
        "resourceType": "CapabilityStatement",
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Observation",
                        "interaction": [{"code": "create"}, {"code": "search-type"}],
                        "searchParam": [{"name": "identifier"}],
                    },
                    {"type": "Encounter", "interaction": [{"code": "read"}]},
                    {
                        "type": "CarePlan",
                        "interaction": [{"code": "update"}, {"code": "create"}],
                        "conditionalUpdate": True,
                        "searchParam": [{"name": "identifier"}],
                    },
                    {
                        "type": "Goal",
                        "interaction": [{"code": "update"}, {"code": "create"}],
                        "conditionalUpdate": True,
                        "searchParam": [{"name": "patient"}],
                    },
                ],
            }
        ],
    }
    capabilities = parse_capabilities(statement)
    assert capabilities.push_types(["Observation", "Encounter", "CarePlan", "Goal"]) == (
        "Observation",
        "CarePlan",
        "Goal",
    )
    assert capabilities.uses_conditional_update("CarePlan")
    assert not capabilities.uses_conditional_update("Observation")  # not offered
    assert not capabilities.uses_conditional_update("Goal")  # cannot search by identifier
    assert capabilities.finds_by_identifier("Observation")


def test_a_pulled_resource_must_be_about_the_patient() -> None:
    from ipt_core.ehr.pull_mapping import concerns_patient

    encounter = {"resourceType": "Encounter", "subject": {"reference": "Patient/p1"}}
    appointment = {
        "resourceType": "Appointment",
        "participant": [
            {"actor": {"reference": "Practitioner/x"}},
            {"actor": {"reference": "https://ehr.example.org/fhir/Patient/p1"}},
        ],
    }
    assert concerns_patient(encounter, "p1")
    assert concerns_patient(appointment, "p1")
    assert not concerns_patient(encounter, "p2")
    assert not concerns_patient({"resourceType": "Observation"}, "p1")
