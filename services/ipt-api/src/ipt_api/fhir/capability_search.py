"""The search part of the CapabilityStatement: parameters, includes, operations.

Generated from the registry, like the search engine itself, so the statement cannot
promise a parameter the server does not evaluate or hide one it does.
"""

from __future__ import annotations

from typing import Any

from ipt_core.fhir.registry import COMMON_PARAMS, REGISTRY, ResourceDefinition, SearchParam

__all__ = ["SYSTEM_INTERACTIONS", "search_capabilities"]

SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system")
_SPEC = "http://hl7.org/fhir/SearchParameter"
# Spec parameters shared by several types have one canonical definition (R4 ids).
_SHARED = {
    "patient": "clinical-patient",
    "identifier": "clinical-identifier",
    "date": "clinical-date",
    "code": "clinical-code",
    "encounter": "clinical-encounter",
    "type": "clinical-type",
    "family": "individual-family",
    "given": "individual-given",
    "gender": "individual-gender",
    "birthdate": "individual-birthdate",
}
_OWN_DEFINITION = {
    ("Appointment", "patient"),
    ("Appointment", "identifier"),
    ("Appointment", "date"),
    ("Patient", "identifier"),
    ("Practitioner", "identifier"),
}


def search_capabilities(definition: ResourceDefinition) -> dict[str, Any]:
    """The search-related elements of one `CapabilityStatement.rest.resource`."""
    params = [*definition.params.values(), *COMMON_PARAMS.values()]
    capabilities: dict[str, Any] = {
        "searchInclude": [
            f"{definition.type}:{p.name}"
            for p in definition.params.values()
            if p.type == "reference"
        ],
        "searchRevInclude": _revincludes(definition.type),
        "searchParam": [_param(definition.type, p) for p in params],
        "operation": [
            {
                "name": "validate",
                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
            }
        ],
    }
    return {key: value for key, value in capabilities.items() if value}


def _param(resource_type: str, param: SearchParam) -> dict[str, Any]:
    return {
        "name": param.name,
        "definition": _definition(resource_type, param),
        "type": param.type,
        "documentation": param.description,
    }


def _definition(resource_type: str, param: SearchParam) -> str:
    if param.definition:
        return param.definition
    if param.name in _SHARED and (resource_type, param.name) not in _OWN_DEFINITION:
        return f"{_SPEC}/{_SHARED[param.name]}"
    return f"{_SPEC}/{resource_type}-{param.name}"


def _revincludes(resource_type: str) -> list[str]:
    return [
        f"{source.type}:{param.name}"
        for source in REGISTRY.values()
        for param in source.params.values()
        if param.type == "reference" and (not param.targets or resource_type in param.targets)
    ]
