"""Our resource → the resource sent to an EHR: identifiers, references, what is left out.

References are rewritten to the EHR's ids: the patient matched by identifier, resources we
pushed before by the ids the EHR gave them. A reference the EHR cannot resolve (a resource it
does not hold, such as our Practitioner) keeps its display text only, so nothing points at
an id that means something else there.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, Final

from ipt_core.ehr.identifiers import SYNC_SOURCE

__all__ = ["NOT_SHARED", "local_references", "outgoing_resource", "sync_identifier"]

NOT_SHARED: Final = "Not shared with this EHR"


def sync_identifier(resource_type: str, id_: str) -> dict[str, str]:
    """Our identifier on a pushed resource: it finds the EHR's copy on every retry."""
    return {"system": SYNC_SOURCE, "value": f"{resource_type}/{id_}"}


def local_references(resource: Mapping[str, Any]) -> set[str]:
    """The relative `Type/id` references of `resource` (contained and absolute ones excluded)."""
    return {ref["reference"] for ref in _references(resource) if _is_relative(ref["reference"])}


def outgoing_resource(
    resource: Mapping[str, Any],
    resource_type: str,
    id_: str,
    remote_refs: Mapping[str, str | None],
) -> dict[str, Any]:
    """The body to send: no id or meta, our sync identifier, references rewritten.

    Args:
        resource: Our stored resource.
        resource_type: Its type.
        id_: Its id.
        remote_refs: For each local reference `Type/id`, the EHR's `Type/id`, or None when
            the EHR does not hold it.
    """
    body = copy.deepcopy(dict(resource))
    body.pop("id", None)
    body.pop("meta", None)
    for ref in _references(body):
        value = ref["reference"]
        target = remote_refs.get(value) if _is_relative(value) else None
        if target is not None:
            ref["reference"] = target
            continue
        if value.startswith("#"):
            continue
        del ref["reference"]
        ref.setdefault("display", NOT_SHARED)
    others = [i for i in body.get("identifier", []) if i.get("system") != SYNC_SOURCE]
    body["identifier"] = [*others, sync_identifier(resource_type, id_)]
    return body


def _is_relative(value: str) -> bool:
    parts = value.split("/")
    return len(parts) == 2 and parts[0][:1].isupper() and bool(parts[1]) and "://" not in value


def _references(node: Any) -> Iterator[dict[str, Any]]:
    """Every Reference (a dict with a string `reference`) in `node`, outside `contained`."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for key, value in node.items():
            if key != "contained":
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)
