"""FHIR JSON's rules on a resource: each problem named with its FHIRPath, a valid one clean."""

from __future__ import annotations

from typing import Any

import pytest

from ipt_core.fhir.errors import InvalidResource
from ipt_core.fhir.validation import check_resource


def _problems(resource: dict[str, Any]) -> set[tuple[str, str]]:
    with pytest.raises(InvalidResource) as refused:
        check_resource(resource, model=False)
    return {(issue.expression[0], issue.diagnostics) for issue in refused.value.issues}


def test_every_rule_names_the_element_that_breaks_it() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Doe", "given": ["  "]}, {}],
        "telecom": [],
        "address": [{"line": ["ok", "bad\x01"], "city": None}],
    }
    assert _problems(patient) == {
        ("Patient.name[0].given[0]", "Strings must not be empty or blank"),
        ("Patient.name[1]", "Objects must not be empty"),
        ("Patient.telecom", "Arrays must not be empty"),
        ("Patient.address[0].line[1]", "Strings must not hold control characters (U+0000-U+001F)"),
        ("Patient.address[0].city", "Elements must not be null"),
    }


def test_a_valid_resource_passes() -> None:
    check_resource({"resourceType": "Patient", "name": [{"family": "Doe", "given": ["J"]}]})


def test_a_derived_body_is_checked_where_the_server_changed_it() -> None:
    stored: dict[str, Any] = {
        "resourceType": "Patient",
        "gender": "female",
        "name": [{"family": " "}],
    }
    # Stored under older rules (a blank family); the server's change elsewhere still passes.
    check_resource({**stored, "active": True}, derived_from=stored)
    changes: list[tuple[dict[str, Any], str]] = [
        ({**stored, "gender": "bogus"}, "Patient.gender"),  # a code outside its value set
        ({**stored, "active": True, "birthDate": ""}, "Patient.birthDate"),  # a blank string
        ({**stored, "name": [{"family": "X"}, {}]}, "Patient.name[1]"),  # an empty object
    ]
    for changed, path in changes:
        with pytest.raises(InvalidResource) as refused:
            check_resource(changed, derived_from=stored)
        assert [issue.expression[0] for issue in refused.value.issues] == [path]
    with pytest.raises(InvalidResource):  # the whole body, as a client's is checked
        check_resource({**stored, "active": True})
