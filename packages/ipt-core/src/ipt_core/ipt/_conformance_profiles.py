"""StructureDefinitions of the IPT model: the IPT course profile and the phase extension.

The profile states in R4 terms what the IPT rules check on write (`_rules.py`) and what the
mapping writes (`_careplan.py`); elements the service reads are marked must-support.
"""

from __future__ import annotations

from typing import Any, Final

from ipt_core.ipt import codes
from ipt_core.ipt._model import MAX_PLANNED_SESSIONS, MAX_PROBLEM_AREAS, MIN_PLANNED_SESSIONS
from ipt_core.ipt.fhir_json import coding, narrative

COURSE_PROFILE: Final = f"{codes.CANONICAL_BASE}/StructureDefinition/ipt-course"
_FHIR_CORE: Final = "http://hl7.org/fhir/StructureDefinition"
_VERSION: Final = "1.0.0"
_MAINTENANCE_BASED_ON: Final = (
    f"category.coding.where(system = '{codes.COURSE_TYPE_SYSTEM}' and code = 'maintenance')"
    ".exists() implies basedOn.exists()"
)


def course_profile() -> dict[str, Any]:
    """The StructureDefinition profiling CarePlan as a course of IPT."""
    return {
        **_header("ipt-course", "IptCourse", "IPT course", "CarePlan"),
        "kind": "resource",
        "abstract": False,
        "type": "CarePlan",
        "baseDefinition": f"{_FHIR_CORE}/CarePlan",
        "derivation": "constraint",
        "differential": {"element": _course_elements()},
    }


def phase_extension_definition() -> dict[str, Any]:
    """The StructureDefinition of the `ipt-phase` extension on an IPT course CarePlan."""
    return {
        **_header("ipt-phase", "IptPhase", "IPT phase", "Extension"),
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": "CarePlan"}],
        "type": "Extension",
        "baseDefinition": f"{_FHIR_CORE}/Extension",
        "derivation": "constraint",
        "differential": {
            "element": [
                _element(
                    "Extension",
                    short="Phase of the IPT course",
                    definition="The phase of the course as last computed by the status engine; "
                    "derived, never written by clients.",
                    max="1",
                ),
                _element("Extension.extension", max="0"),
                _element("Extension.url", fixedUri=codes.PHASE_EXTENSION),
                _element(
                    "Extension.value[x]",
                    min=1,
                    type=[{"code": "Coding"}],
                    patternCoding={"system": codes.PHASE_SYSTEM},
                ),
            ]
        },
    }


def _header(sd_id: str, name: str, title: str, kind: str) -> dict[str, Any]:
    url = f"{codes.CANONICAL_BASE}/StructureDefinition/{sd_id}"
    description = (
        "A course of interpersonal psychotherapy (IPT): a CarePlan whose category holds "
        "SNOMED CT 443730003."
        if kind == "CarePlan"
        else "The phase of an IPT course (CodeSystem ipt-phase)."
    )
    return {
        "resourceType": "StructureDefinition",
        "id": sd_id,
        "text": narrative(f"{title} ({kind})", [("URL", url), ("Description", description)]),
        "url": url,
        "version": _VERSION,
        "name": name,
        "title": title,
        "status": "active",
        "experimental": False,
        "publisher": "IPT Care Service",
        "description": description,
        "fhirVersion": "4.0.1",
    }


def _course_elements() -> list[dict[str, Any]]:
    return [
        _element(
            "CarePlan",
            short="A course of interpersonal psychotherapy",
            constraint=[
                {
                    "key": "ipt-1",
                    "severity": "error",
                    "human": "A maintenance course is basedOn the acute course it continues",
                    "expression": _MAINTENANCE_BASED_ON,
                    "source": COURSE_PROFILE,
                }
            ],
        ),
        _element("CarePlan.extension", slicing=_slicing("value", "url")),
        _element(
            "CarePlan.extension",
            slice_name="phase",
            max="1",
            type=[{"code": "Extension", "profile": [codes.PHASE_EXTENSION]}],
        ),
        *_single_slice("CarePlan.identifier", _slicing("value", "system"), "course"),
        _element(
            "CarePlan.identifier.system",
            "CarePlan.identifier:course",
            min=1,
            fixedUri=codes.COURSE_IDENTIFIER_SYSTEM,
        ),
        _element(
            "CarePlan.basedOn",
            short="The acute course a maintenance course continues",
            type=[{"code": "Reference", "targetProfile": [COURSE_PROFILE]}],
            mustSupport=True,
        ),
        _element("CarePlan.status", mustSupport=True),
        _element("CarePlan.intent", fixedCode="plan"),
        *_category_elements(),
        _element(
            "CarePlan.subject",
            type=[{"code": "Reference", "targetProfile": [f"{_FHIR_CORE}/Patient"]}],
            mustSupport=True,
        ),
        _element("CarePlan.period", min=1, mustSupport=True),
        _element("CarePlan.period.start", min=1, mustSupport=True),
        _element("CarePlan.author", short="The therapist", mustSupport=True),
        _element("CarePlan.addresses", mustSupport=True),
        _element("CarePlan.goal", mustSupport=True),
        *_activity_elements(),
    ]


def _category_elements() -> list[dict[str, Any]]:
    slices = [
        ("assessPlan", 0, "1", coding(codes.US_CORE_CAREPLAN_CATEGORY, codes.ASSESS_PLAN)),
        ("ipt", 1, "1", coding(codes.SNOMED, codes.IPT_THERAPY)),
        ("courseType", 0, "1", {"system": codes.COURSE_TYPE_SYSTEM}),
        ("problemArea", 1, str(MAX_PROBLEM_AREAS), {"system": codes.PROBLEM_AREA_SYSTEM}),
    ]
    return [
        _element("CarePlan.category", min=2, slicing=_slicing("pattern", "$this")),
        *(
            _element(
                "CarePlan.category",
                slice_name=name,
                min=low,
                max=high,
                patternCodeableConcept={"coding": [pattern]},
                mustSupport=True,
            )
            for name, low, high, pattern in slices
        ),
    ]


def _activity_elements() -> list[dict[str, Any]]:
    timing = "CarePlan.activity.detail.scheduledTiming[x]"
    return [
        *_single_slice("CarePlan.activity", _slicing("pattern", "detail.code"), "sessions"),
        _element(
            "CarePlan.activity.detail.code",
            "CarePlan.activity:sessions",
            min=1,
            patternCodeableConcept={"coding": [coding(codes.SNOMED, codes.IPT_THERAPY)]},
        ),
        _element(timing, "CarePlan.activity:sessions", type=[{"code": "Timing"}], mustSupport=True),
        _element(
            f"{timing}.repeat.count",
            "CarePlan.activity:sessions",
            short="Planned sessions",
            minValuePositiveInt=MIN_PLANNED_SESSIONS,
            maxValuePositiveInt=MAX_PLANNED_SESSIONS,
        ),
        _element("CarePlan.activity", slice_name="practice", mustSupport=True),
        _element(
            "CarePlan.activity.detail.code",
            "CarePlan.activity:practice",
            min=1,
            patternCodeableConcept={
                "coding": [coding(codes.ACTIVITY_SYSTEM, codes.SOCIAL_PRACTICE)]
            },
        ),
        _element(
            "CarePlan.activity.detail.description", "CarePlan.activity:practice", mustSupport=True
        ),
    ]


def _element(
    path: str, within: str | None = None, *, slice_name: str | None = None, **fields: Any
) -> dict[str, Any]:
    """An ElementDefinition; `slice_name` starts a slice, `within` (e.g.
    `CarePlan.activity:sessions`) places the element inside one.
    """
    element_id = f"{path}:{slice_name}" if slice_name else path
    if within:
        sliced = within.partition(":")[0]
        element_id = within + path.removeprefix(sliced)
    element: dict[str, Any] = {"id": element_id, "path": path}
    if slice_name:
        element["sliceName"] = slice_name
    return element | fields


def _single_slice(path: str, slicing: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """`path` sliced by `slicing`, and its slice `name`: at most one, must-support."""
    return [
        _element(path, slicing=slicing),
        _element(path, slice_name=name, max="1", mustSupport=True),
    ]


def _slicing(kind: str, path: str) -> dict[str, Any]:
    return {"discriminator": [{"type": kind, "path": path}], "rules": "open"}
