"""Shared checks for the IPT mapping tests: every resource we produce must be valid R4."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

import fhirkit
import pytest
from fhir.resources.R4B import get_fhir_model_class

from tests.unit.ipt.support import FhirCheck

XHTML = "{http://www.w3.org/1999/xhtml}"
NARRATIVE_TAGS = {"div", "p", "ul", "li"}


def assert_valid_r4(resource: dict[str, Any]) -> None:
    """Fail unless `resource` is valid R4 JSON for fhir.resources, fhirkit and our JSON rules."""
    wire = json.loads(json.dumps(resource))
    get_fhir_model_class(wire["resourceType"]).model_validate(wire)
    errors = [str(issue) for issue in fhirkit.validate(wire) if issue.severity == "error"]
    assert errors == []
    assert list(_json_rule_problems(wire, wire["resourceType"])) == []
    if "text" in wire:
        assert_safe_narrative(wire["text"]["div"])


def assert_safe_narrative(div: str) -> None:
    """Fail unless `div` is well-formed XHTML made only of plain text elements."""
    root = ElementTree.fromstring(div)
    assert root.tag == f"{XHTML}div"
    for element in root.iter():
        assert element.tag.removeprefix(XHTML) in NARRATIVE_TAGS, element.tag
        assert element.attrib == {}


def _json_rule_problems(node: Any, path: str) -> Iterator[str]:
    # FHIR JSON has no nulls, empty objects, empty arrays or blank strings.
    if isinstance(node, dict):
        if not node:
            yield f"{path} is empty"
        for key, value in node.items():
            yield from _json_rule_problems(value, f"{path}.{key}")
    elif isinstance(node, list):
        if not node:
            yield f"{path} is empty"
        for index, value in enumerate(node):
            yield from _json_rule_problems(value, f"{path}[{index}]")
    elif node is None or (isinstance(node, str) and not node.strip()):
        yield f"{path} is null or blank"


@pytest.fixture(scope="session")
def valid_r4() -> FhirCheck:
    """The R4 validity check, as a fixture (session-scoped, so hypothesis tests may use it)."""
    return assert_valid_r4
