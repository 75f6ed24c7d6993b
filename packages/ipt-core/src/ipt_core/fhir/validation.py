"""Validation of resources on write: R4 structure and types, JSON rules, required codes.

Structure and types come from the `fhir.resources.R4B` models (wire-compatible with R4 for
every type served); what those models let through — nulls, empty values, codes outside a
required value set — is checked here. Every problem is reported with its FHIRPath.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import Any

import pydantic
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic_core import ErrorDetails

from ipt_core.fhir.codesets import CODEABLE_BINDINGS, REQUIRED_CODES
from ipt_core.fhir.compiled_model import ABSTRACT_RESOURCES, refusals
from ipt_core.fhir.errors import InvalidResource, Issue

__all__ = ["MAX_STRING_LENGTH", "check_resource", "fhirpath"]

MAX_STRING_LENGTH = 1024 * 1024  # FHIR R4: "strings SHALL NOT exceed 1MB in size"
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def check_resource(
    resource: dict[str, Any], *, model: bool = True, derived_from: dict[str, Any] | None = None
) -> None:
    """Raise `InvalidResource` listing every problem of `resource`; return when it is valid.

    `derived_from`: the stored version (validated in full when it was written) in which the
    server set a value of its own making to make `resource`: the status engine's write-backs
    (docs/architecture.md, "Status engine"). Only the top-level elements that differ from it
    are checked then (JSON rules, contained resources, required codes), and the model is
    not run. The model was a third of a first computation's CPU, the whole body's JSON rules
    and codes another 6%, and neither can find anything new in the elements the server left
    as they were; nor does a version stored under older rules stop the server's own change.
    Never for a body from a client or an EHR.

    `model=False` leaves out the fhir.resources model alone (for tests of the other rules).
    """
    resource_type = str(resource.get("resourceType"))
    if derived_from is not None:
        model = False
        changed = {key: value for key, value in resource.items() if derived_from.get(key) != value}
        resource = {**changed, "resourceType": resource_type}
    contained = _contained_issues(resource, resource_type)
    issues = [
        *_json_rule_issues(resource, resource_type),
        *contained,
        *(_model_issues(resource, resource_type) if model and not contained else ()),
        *_code_issues(resource, resource_type),
    ]
    if issues:
        summary = "; ".join(f"{', '.join(i.expression)}: {i.diagnostics}" for i in issues[:5])
        raise InvalidResource(summary, issues=tuple(issues))


def fhirpath(resource_type: str, location: tuple[str | int, ...]) -> str:
    """Render a location such as `('activity', 0, 'detail')` as `CarePlan.activity[0].detail`."""
    path = resource_type
    for step in location:
        path += f"[{step}]" if isinstance(step, int) else f".{step}"
    return path


@cache
def _model(resource_type: str) -> type[pydantic.BaseModel]:
    model: type[pydantic.BaseModel] = get_fhir_model_class(resource_type)
    return model


def _contained_issues(resource: dict[str, Any], resource_type: str) -> list[Issue]:
    """Contained resources the models cannot take: fhir.resources picks a contained
    resource's model by its `resourceType` and fails with a TypeError or KeyError, not a
    validation error, on one that names no resource, which would be a 500; and it takes the
    abstract Resource and DomainResource.

    FHIR also forbids a contained resource to contain others (R4 dom-2).
    """
    entries = resource.get("contained")
    if not isinstance(entries, list):
        return []
    issues: list[Issue] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        if not _is_resource_type(entry.get("resourceType")):
            message = "A contained resource needs the resourceType of a FHIR resource"
            location: tuple[str | int, ...] = ("contained", index, "resourceType")
            issues.append(Issue("structure", message, (fhirpath(resource_type, location),)))
        elif "contained" in entry:
            message = "A contained resource must not contain other resources"
            location = ("contained", index, "contained")
            issues.append(Issue("structure", message, (fhirpath(resource_type, location),)))
    return issues


def _is_resource_type(name: object) -> bool:
    if not isinstance(name, str):
        return False
    try:
        model = get_fhir_model_class(name)
    except ValueError:  # no FHIR model of that name
        return False
    return issubclass(model, Resource) and model not in ABSTRACT_RESOURCES


def _model_issues(resource: dict[str, Any], resource_type: str) -> Iterator[Issue]:
    # The compiled copy of the models answers "valid" in a quarter of the time; what it
    # rejects, the models themselves judge, so their messages are the API's
    # (compiled_model.py).
    refused = refusals(resource)
    if refused == []:
        return
    try:
        _model(resource_type).model_validate(resource)
    except pydantic.ValidationError as error:
        yield from _issues(error.errors(), resource_type)
        return
    # Valid to the models, not to their compiled copy: JSON the models are lenient with and
    # FHIR is not (an element given as JSON text, `resourceType` inside an element). Nulls
    # the JSON rules report already.
    yield from _issues([p for p in refused or () if p["input"] is not None], resource_type)


def _issues(problems: Iterable[ErrorDetails], resource_type: str) -> Iterator[Issue]:
    for problem in problems:
        location = tuple(step for step in problem["loc"] if isinstance(step, str | int))
        code = "structure" if problem["type"] == "extra_forbidden" else "value"
        if problem["type"].endswith("missing"):
            code = "required"
        message = "Unknown element" if code == "structure" else problem["msg"]
        yield Issue(code, message, (fhirpath(resource_type, location),))


def _json_rule_issues(resource: dict[str, Any], resource_type: str) -> list[Issue]:
    """Where `resource` breaks FHIR JSON's rules: no nulls (outside primitive-extension
    arrays), no empty objects, arrays or strings, FHIR strings only.

    One walk that renders a path only for a problem: a path built at every node, and a
    generator per node, cost a valid IPT CarePlan 25 µs against 18-20 µs now, on every
    write and status write-back (bench/PROFILE.md, "Tenth round").
    """
    issues: list[Issue] = []
    location: list[str | int] = []

    def flag(code: str, message: str) -> None:
        issues.append(Issue(code, message, (fhirpath(resource_type, tuple(location)),)))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if not node:
                flag("value", "Objects must not be empty")
            for key, value in node.items():
                location.append(key)
                if value is None:
                    flag("value", "Elements must not be null")
                else:
                    walk(value)
                location.pop()
        elif isinstance(node, list):
            if not node:
                flag("value", "Arrays must not be empty")
            for index, value in enumerate(node):
                if value is not None:
                    location.append(index)
                    walk(value)
                    location.pop()
        elif isinstance(node, str):
            problem = _string_problem(node)
            if problem is not None:
                flag(*problem)

    walk(resource)
    return issues


def _string_problem(value: str) -> tuple[str, str] | None:
    # FHIR strings: not blank, at most 1 MiB, no control characters other than tab, CR, LF
    # (https://hl7.org/fhir/R4/datatypes.html#string); PostgreSQL cannot store NUL either.
    if not value.strip():
        return "value", "Strings must not be empty or blank"
    if len(value) > MAX_STRING_LENGTH:
        return "too-long", f"Strings may hold at most {MAX_STRING_LENGTH} characters"
    if _CONTROL_CHARACTERS.search(value):
        return "value", "Strings must not hold control characters (U+0000-U+001F)"
    return None


def _code_issues(resource: dict[str, Any], resource_type: str) -> Iterator[Issue]:
    for path, allowed in REQUIRED_CODES.get(resource_type, {}).items():
        for location, value in _values(resource, path.split(".")):
            if value not in allowed:
                yield Issue(
                    "code-invalid",
                    f"{value!r} is not one of the codes of the required value set: "
                    + ", ".join(allowed),
                    (fhirpath(resource_type, location),),
                )
    yield from _codeable_issues(resource, resource_type, CODEABLE_BINDINGS.get(resource_type, {}))


def _codeable_issues(
    resource: dict[str, Any],
    resource_type: str,
    bindings: Mapping[str, tuple[str, tuple[str, ...]]],
) -> Iterator[Issue]:
    for path, (system, allowed) in bindings.items():
        for location, concept in _values(resource, path.split(".")):
            codings = concept.get("coding", []) if isinstance(concept, dict) else []
            for index, coding in enumerate(codings):
                if coding.get("system") == system and coding.get("code") not in allowed:
                    yield Issue(
                        "code-invalid",
                        f"{coding.get('code')!r} is not a code of {system}",
                        (fhirpath(resource_type, (*location, "coding", index, "code")),),
                    )


def _values(
    node: Any, steps: list[str], location: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _values(item, steps, (*location, index))
    elif not steps:
        yield location, node
    elif isinstance(node, dict) and steps[0] in node:
        yield from _values(node[steps[0]], steps[1:], (*location, steps[0]))
