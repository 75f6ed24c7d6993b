"""The compiled copy of the fhir.resources models: it accepts the valid resources the service
writes, and it never accepts what the models reject (so the models' errors are the API's)."""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bench.dataset import course_resources
from ipt_core.fhir.compiled_model import accepts
from ipt_core.fhir.registry import REGISTRY
from ipt_core.fhir.validation import _contained_issues, _model

_VALID: list[dict[str, Any]] = [
    *course_resources(1, sessions=3, phq9=2),
    {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2026-01-05T09:00:00Z",
        "end": "2026-01-05T10:00:00Z",
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}],
        "extension": [
            {
                "url": "https://ipt.example.org/fhir/StructureDefinition/course",
                "valueReference": {"reference": "CarePlan/c1"},
            }
        ],
    },
    {
        "resourceType": "Practitioner",
        "name": [{"family": "Weissman", "prefix": ["Dr"]}],
        "qualification": [{"code": {"text": "Psychiatrist"}}],
        "telecom": [{"system": "email", "value": "mw@example.org"}],
    },
    {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "Rebuild a social network"},
        "subject": {"reference": "Patient/p1"},
        "target": [{"dueDate": "2026-06-01", "measure": {"text": "PHQ-9"}}],
    },
    {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]},
        "onsetDateTime": "2025-11-02",
        "note": [{"text": "Onset after a move", "time": "2025-11-03T10:00:00+01:00"}],
    },
    {
        "resourceType": "Patient",
        "birthDate": "1970",
        "_birthDate": {"extension": [{"url": "urn:x", "valueString": "approximate"}]},
        "name": [{"given": ["A", "B"], "_given": [None, {"extension": [{"url": "urn:y"}]}]}],
        "extension": [{"url": "urn:z", "extension": [{"url": "a", "valueDecimal": 1.5}]}],
    },
    {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "PHQ-9 item 9"},
        "valueCodeableConcept": {"text": "several days"},
        "effectivePeriod": {"start": "2026-01-05", "end": "2026-01-06"},
        "contained": [{"resourceType": "Patient", "id": "p", "gender": "other"}],
        "subject": {"reference": "#p"},
    },
]


def _model_accepts(resource: dict[str, Any]) -> bool:
    try:
        _model(str(resource["resourceType"])).model_validate(resource)
    except pydantic.ValidationError:
        return False
    return True


@pytest.mark.parametrize("resource", _VALID, ids=lambda r: str(r["resourceType"]))
def test_accepts_what_the_service_writes(resource: dict[str, Any]) -> None:
    assert _model_accepts(resource)
    assert accepts(resource)  # the fast path is taken, not only safe


def test_every_served_type_is_compiled() -> None:
    assert {str(resource["resourceType"]) for resource in _VALID} == set(REGISTRY)


def test_other_types_are_left_to_the_models() -> None:
    assert not accepts({"resourceType": "NoSuchResource"})
    assert not accepts({"resourceType": "Coding", "code": "x"})
    assert not accepts({"resourceType": "Bundle", "type": "collection"})


@pytest.mark.parametrize(
    ("resource", "why"),
    [
        ({"resourceType": "Encounter", "class": {"code": "AMB"}}, "required status missing"),
        (
            {**_VALID[-1], "effectiveDateTime": "2026-01-05"},
            "two choices of effective[x]",
        ),
        ({**_VALID[0], "identifier": [None]}, "null in a list of elements"),
        (
            {**_VALID[-1], "contained": [*_VALID[-1]["contained"], None]},
            "null in the list of contained resources",
        ),
        ({**_VALID[0], "name": [{"family": "X", "nickname": "Y"}]}, "unknown nested element"),
        ({**_VALID[0], "birthDate": "1970-13-01"}, "invalid date"),
        ({**_VALID[0], "gender": 3}, "wrong primitive type"),
        (
            {**_VALID[0], "meta": {"versionId": "1", "resourceType": "Meta"}},
            "resourceType in an element",
        ),
        ({**_VALID[0], "meta": '{"versionId": "1"}'}, "element as a JSON string"),
        (
            {**_VALID[-1], "contained": [{"resourceType": "Patient", "bogus": 1}]},
            "unknown element in a contained resource",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_rejections_agree_or_fall_back(resource: dict[str, Any], why: str) -> None:
    """Every case is rejected by the compiled schema. The models reject most of them too;
    the resourceType inside an element and the element as JSON text they accept, and the
    compiled schema's refusal is then reported (tests/integration/test_fhir_bad_input.py)."""
    assert not accepts(resource), why


_NAMES = sorted(
    {
        "effectivePeriod",
        "effectiveDateTime",
        "valueString",
        "valueQuantity",
        "valueInteger",
        "onsetDateTime",
        "period",
        "status",
        "_status",
        "resourceType",
        "resource_type",
        "status__ext",
        "fhir_comments",
        "extension",
        "url",
        "reference",
        "coding",
        "given",
        "_given",
        "start",
        "end",
        "id",
        "contained",
        "text",
        "bogus",
        "code",
        "system",
    }
)
_VALUES: list[Any] = [
    None,
    0,
    1.5,
    -1,
    True,
    "",
    " ",
    "x",
    "final",
    "2026-01-05",
    "2026-02-30",
    "2026-01-05T09:00:00Z",
    [],
    [None],
    ["x"],
    [{}],
    {},
    {"reference": "Patient/p"},
    {"url": "urn:x"},
    [{"url": "urn:x", "valueString": "v"}],
    {"coding": [{"code": "x"}]},
    {"resourceType": "Patient"},
    [{"resourceType": "Patient", "id": "p"}],
    {"start": "2026"},
]


def _nodes(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _nodes(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _nodes(value, (*path, index))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    resource: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_nodes(resource)))
        target = _at(resource, path)
        action = draw(st.sampled_from(["set", "add", "delete", "append"]))
        value = copy.deepcopy(draw(st.sampled_from(_VALUES)))
        if action == "set" and path and path != ("resourceType",):
            _at(resource, path[:-1])[path[-1]] = value
        elif action == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(_NAMES))] = value
        elif action == "delete" and path and isinstance(_at(resource, path[:-1]), dict):
            if path != ("resourceType",):
                del _at(resource, path[:-1])[path[-1]]
        elif action == "append" and isinstance(target, list):
            target.append(value)
    return resource


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_never_accepts_what_the_models_reject(resource: dict[str, Any]) -> None:
    # check_resource refuses contained resources the models cannot take before either runs.
    assume(not _contained_issues(resource, str(resource["resourceType"])))
    if accepts(resource):
        assert _model_accepts(resource), resource
