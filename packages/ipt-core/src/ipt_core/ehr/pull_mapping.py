"""A resource pulled from an EHR → the resource written through our FHIR store.

It keeps the EHR's content, gets `meta.source` (the EHR resource's URL) and an identifier
naming the EHR and its id, so the next pull of the same resource updates it, and its patient
reference is rewritten to our Patient so the IPT auto-linking (docs/fhir-mapping.md, the
linking rules) attaches it to the patient's course. References to anything we do not hold
keep their display only.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

from ipt_core.ehr.identifiers import ehr_identifier_system

__all__ = ["HELD_IN_EHR", "concerns_patient", "incoming_resource", "pull_criteria"]

HELD_IN_EHR: Final = "Held in the EHR only"


def concerns_patient(remote: Mapping[str, Any], remote_patient: str) -> bool:
    """Whether the EHR's resource is about `remote_patient` (its subject or a participant).

    Checked on every pulled resource: an EHR that ignores a search parameter it does not
    know answers with everyone's resources, and those must never be filed under this patient.
    """
    wanted = f"Patient/{remote_patient}"
    references = [(remote.get("subject") or {}).get("reference")]
    references += [(p.get("actor") or {}).get("reference") for p in remote.get("participant", [])]
    return any(
        isinstance(ref, str) and (ref == wanted or ref.endswith(f"/{wanted}")) for ref in references
    )


def pull_criteria(endpoint: str, resource_type: str, remote_id: str) -> str:
    """The conditional-update criteria that find our copy of the EHR's resource."""
    value = f"{ehr_identifier_system(endpoint)}|{resource_type}/{remote_id}"
    return urlencode({"identifier": value})


def incoming_resource(
    remote: Mapping[str, Any],
    *,
    endpoint: str,
    base_url: str,
    local_refs: Mapping[str, str],
) -> dict[str, Any]:
    """Our copy of `remote`.

    Args:
        remote: The EHR's resource.
        endpoint: The endpoint's name.
        base_url: The endpoint's FHIR base (for `meta.source` and absolute references).
        local_refs: EHR `Type/id` → our `Type/id`, for the references we can resolve.
    """
    resource_type = str(remote["resourceType"])
    remote_id = str(remote["id"])
    body = copy.deepcopy(dict(remote))
    body.pop("id", None)
    body["meta"] = {"source": f"{base_url}/{resource_type}/{remote_id}"}
    body.pop("text", None)  # the EHR's narrative may name things we dropped below
    _rewrite(body, base_url, local_refs)
    system = ehr_identifier_system(endpoint)
    others = [i for i in body.get("identifier", []) if i.get("system") != system]
    body["identifier"] = [*others, {"system": system, "value": f"{resource_type}/{remote_id}"}]
    return body


def _rewrite(node: Any, base_url: str, local_refs: Mapping[str, str]) -> None:
    if isinstance(node, list):
        for item in node:
            _rewrite(item, base_url, local_refs)
        return
    if not isinstance(node, dict):
        return
    value = node.get("reference")
    if isinstance(value, str) and not value.startswith("#"):
        relative = value.removeprefix(base_url + "/").split("/_history/", 1)[0]
        local = local_refs.get(relative)
        if local is not None:
            node["reference"] = local
        else:
            del node["reference"]
            node.setdefault("display", HELD_IN_EHR)
    for key, child in node.items():
        if key != "contained":
            _rewrite(child, base_url, local_refs)
