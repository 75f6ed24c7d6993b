"""The read-only conformance resources of the IPT model, served under `/fhir` (issue 4, item 5).

The four CodeSystems of docs/ipt-model.md#the-projects-own-code-systems, the profile of an IPT
course CarePlan, the phase extension and the `careplan` search parameter of Encounter and
Appointment. They are built from the same tables the mappings use, so a code or display is
defined once.
"""

from __future__ import annotations

from typing import Any, Final

from ipt_core.ipt._conformance_profiles import course_profile, phase_extension_definition
from ipt_core.ipt._vocabulary import (
    ACTIVITY_CONCEPTS,
    COURSE_TYPE_CONCEPTS,
    PHASE_CONCEPTS,
    PROBLEM_AREA_CONCEPTS,
    Concepts,
)
from ipt_core.ipt.codes import (
    ACTIVITY_SYSTEM,
    APPOINTMENT_BASED_ON_EXTENSION,
    CANONICAL_BASE,
    COURSE_TYPE_SYSTEM,
    ENCOUNTER_BASED_ON_EXTENSION,
    PHASE_SYSTEM,
    PROBLEM_AREA_SYSTEM,
)
from ipt_core.ipt.fhir_json import narrative

CONFORMANCE_VERSION: Final = "1.0.0"
PUBLISHER: Final = "IPT Care Service"


def conformance_resources() -> list[dict[str, Any]]:
    """Every conformance resource, freshly built (callers may change what they get)."""
    return [
        *_code_systems(),
        course_profile(),
        phase_extension_definition(),
        _careplan_search_parameter("Encounter", ENCOUNTER_BASED_ON_EXTENSION),
        _careplan_search_parameter("Appointment", APPOINTMENT_BASED_ON_EXTENSION),
    ]


def conformance_resource(resource_type: str, resource_id: str) -> dict[str, Any] | None:
    """The conformance resource of a type and id, or None when there is none."""
    return next(
        (
            resource
            for resource in conformance_resources()
            if resource["resourceType"] == resource_type and resource["id"] == resource_id
        ),
        None,
    )


def _code_systems() -> list[dict[str, Any]]:
    return [
        _code_system(
            PROBLEM_AREA_SYSTEM,
            "IptProblemArea",
            "IPT problem area",
            "The four interpersonal problem areas an IPT course focuses on (one, occasionally "
            "two).",
            PROBLEM_AREA_CONCEPTS,
        ),
        _code_system(
            COURSE_TYPE_SYSTEM,
            "IptCourseType",
            "IPT course type",
            "Whether a course of IPT is the acute course or a maintenance course after it.",
            COURSE_TYPE_CONCEPTS,
        ),
        _code_system(
            PHASE_SYSTEM,
            "IptPhase",
            "IPT phase",
            "Where a course of IPT stands, as computed by the service's status engine.",
            PHASE_CONCEPTS,
        ),
        _code_system(
            ACTIVITY_SYSTEM,
            "IptActivity",
            "IPT activity",
            "Activities of an IPT course other than its sessions.",
            ACTIVITY_CONCEPTS,
        ),
    ]


def _code_system(
    url: str, name: str, title: str, description: str, concepts: Concepts
) -> dict[str, Any]:
    rows = [(code, f"{display}: {definition}") for code, (display, definition) in concepts.items()]
    return {
        "resourceType": "CodeSystem",
        "id": url.rsplit("/", 1)[1],
        "text": narrative(f"{title} ({url})", rows),
        "url": url,
        "version": CONFORMANCE_VERSION,
        "name": name,
        "title": title,
        "status": "active",
        "experimental": False,
        "publisher": PUBLISHER,
        "description": description,
        "caseSensitive": True,
        "content": "complete",
        "count": len(concepts),
        "concept": [
            {"code": code, "display": display, "definition": definition}
            for code, (display, definition) in concepts.items()
        ],
    }


def _careplan_search_parameter(resource_type: str, extension: str) -> dict[str, Any]:
    parameter_id = f"{resource_type.lower()}-careplan"
    description = (
        f"The IPT course (CarePlan) a session ({resource_type}) is explicitly linked to by "
        f"the `{extension}` extension"
    )
    return {
        "resourceType": "SearchParameter",
        "id": parameter_id,
        "text": narrative(
            f"Search parameter careplan of {resource_type}", [("Description", description)]
        ),
        "url": f"{CANONICAL_BASE}/SearchParameter/{parameter_id}",
        "version": CONFORMANCE_VERSION,
        "name": f"{resource_type}CarePlan",
        "status": "active",
        "experimental": False,
        "publisher": PUBLISHER,
        "description": description,
        "code": "careplan",
        "base": [resource_type],
        "type": "reference",
        "expression": f"{resource_type}.extension('{extension}').value.ofType(Reference)",
        "xpathUsage": "normal",
        "target": ["CarePlan"],
    }
