"""`_summary` and `_elements`: the subset of each resource a search returns.

Which elements are "summary" and which are mandatory comes from the R4 structure
definitions (via the `fhir.resources.R4B` field metadata). Mandatory elements are always
kept, as the spec asks, so a subsetted resource is still valid; each is marked SUBSETTED.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class

from ipt_core.fhir.search._model import Summary

__all__ = ["subset_content"]

_SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
_ALWAYS = frozenset({"resourceType", "id", "meta"})


def subset_content(
    content: str, resource_type: str, summary: Summary | None, elements: tuple[str, ...]
) -> str:
    """Return `content` reduced as `_summary` / `_elements` ask (unchanged when neither does)."""
    if not elements and summary in {None, "false"}:  # the common case: no table to look up
        return content
    kept = _kept_elements(resource_type, summary, elements)
    if kept is None:
        return content
    resource: dict[str, Any] = orjson.loads(content)
    subset = {k: v for k, v in resource.items() if k in kept or k.lstrip("_") in kept}
    meta = dict(subset.get("meta", {}))
    meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
    subset["meta"] = meta
    return orjson.dumps(subset).decode()


def _kept_elements(
    resource_type: str, summary: Summary | None, elements: tuple[str, ...]
) -> frozenset[str] | None:
    summary_names, mandatory, by_base = _element_table(resource_type)
    if elements and summary in {None, "false"}:
        chosen = {name for e in elements for name in by_base.get(e, (e,))}
        return _ALWAYS | mandatory | chosen
    if summary == "true":
        return _ALWAYS | mandatory | summary_names
    if summary == "text":
        return _ALWAYS | mandatory | {"text"}
    if summary == "data":
        everything = {name for names in by_base.values() for name in names}
        return frozenset(everything | _ALWAYS) - {"text"}
    return None


@cache
def _element_table(
    resource_type: str,
) -> tuple[frozenset[str], frozenset[str], dict[str, tuple[str, ...]]]:
    """Summary element names, mandatory names, and JSON names by base name (`value[x]`)."""
    model = get_fhir_model_class(resource_type)
    summary: set[str] = set()
    mandatory: set[str] = set()
    by_base: dict[str, list[str]] = {}
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        json_name = field.alias or name
        base = str(extra.get("one_of_many") or json_name)
        by_base.setdefault(base, []).append(json_name)
        if extra.get("summary_element_property"):
            summary.add(json_name)
        if (
            field.is_required()
            or extra.get("element_required")
            or extra.get("one_of_many_required")
        ):
            mandatory.add(json_name)
    return frozenset(summary), frozenset(mandatory), {k: tuple(v) for k, v in by_base.items()}
