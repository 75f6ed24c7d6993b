"""The CapabilityStatement, generated from the resource registry."""

from __future__ import annotations

from typing import Any

from ipt_api.audit.capability import audit_capability
from ipt_api.bulk.capability import BULK_DATA_CAPABILITY, system_operations, with_bulk_export
from ipt_api.fhir.capability_search import SYSTEM_INTERACTIONS, search_capabilities
from ipt_api.fhir.conformance import conformance_capabilities
from ipt_core.fhir.registry import REGISTRY, ResourceDefinition

__all__ = ["SOFTWARE_VERSION", "capability_statement"]

SOFTWARE_VERSION = "0.1.0"
_RELEASE_DATE = "2026-11-25"
_INSTANCE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance")
_TYPE_INTERACTIONS = ("create", "search-type", "history-type")


def capability_statement(base: str, security: dict[str, Any] | None = None) -> dict[str, Any]:
    """Describe exactly the interactions this server supports, at `base`.

    `security` is `rest.security` (SMART on FHIR, see ipt_api/fhir/smart.py), when tokens
    are required.
    """
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "id": "ipt-care-service",
        "url": f"{base}/metadata",
        "name": "IptCareService",
        "title": "IPT Care Service FHIR API",
        "status": "active",
        "experimental": False,
        "date": _RELEASE_DATE,
        "publisher": "IPT Care Service",
        "kind": "instance",
        "instantiates": [BULK_DATA_CAPABILITY],
        "software": {"name": "IPT Care Service", "version": SOFTWARE_VERSION},
        "implementation": {"description": "IPT Care Service", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "resource": with_bulk_export(
                    [
                        *(_resource(definition) for definition in REGISTRY.values()),
                        *conformance_capabilities(),
                        audit_capability(),
                    ]
                ),
                "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
                "operation": system_operations(),
            }
        ],
    }
    if security is not None:
        statement["rest"][0]["security"] = security
    return statement


def _resource(definition: ResourceDefinition) -> dict[str, Any]:
    return {
        "type": definition.type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{definition.type}",
        "interaction": [{"code": code} for code in (*_INSTANCE_INTERACTIONS, *_TYPE_INTERACTIONS)],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        **search_capabilities(definition),
    }
