"""Kick-off parameters of `$export`: parsed from the query (GET) or a Parameters body (POST).

Supported: `_outputFormat` (application/fhir+ndjson and its aliases), `_type`, `_since`,
`_typeFilter`. Any other parameter is refused with a 400 rather than silently ignored, so a
client never receives more (or other) data than it asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from fastapi import Request

from ipt_core.bulk import COMPARTMENT_PARAMS, parse_type_filter
from ipt_core.fhir.errors import InvalidRequest
from ipt_core.fhir.registry import REGISTRY
from ipt_core.instants import parse_instant

__all__ = ["ExportParameters", "export_parameters", "require_respond_async"]

OUTPUT_FORMATS: Final = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
_KNOWN: Final = frozenset({"_outputFormat", "_type", "_since", "_typeFilter"})


class ExportParameters:
    """The validated kick-off parameters."""

    def __init__(
        self, types: tuple[str, ...], since: datetime | None, filters: dict[str, list[str]]
    ) -> None:
        """Keep the exported types (in export order), `_since` and the filters per type."""
        self.types = types
        self.since = since
        self.filters = filters


def require_respond_async(request: Request) -> None:
    """The Bulk Data IG requires `Prefer: respond-async` on a kick-off."""
    prefer = [p.strip() for p in request.headers.get("prefer", "").split(",")]
    if "respond-async" not in {p.split(";")[0].strip() for p in prefer}:
        raise InvalidRequest("$export needs the header Prefer: respond-async")


async def export_parameters(request: Request, level: str) -> ExportParameters:
    """Parse and check the kick-off's parameters for a system, patient or group export."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        pairs += _parameters_body(await _json(request))
    for name, _ in pairs:
        if name not in _KNOWN:
            raise InvalidRequest(f"$export does not support {name!r}", expression=(name,))
    for name, value in pairs:
        if name == "_outputFormat" and value.replace(" ", "+") not in OUTPUT_FORMATS:
            raise InvalidRequest(f"_outputFormat {value!r} is not supported; use ndjson")
    allowed = sorted(REGISTRY) if level == "system" else sorted(COMPARTMENT_PARAMS)
    types = _types([v for n, v in pairs if n == "_type"], allowed)
    since = _since([v for n, v in pairs if n == "_since"])
    filters = _filters([v for n, v in pairs if n == "_typeFilter"], types)
    return ExportParameters(types, since, filters)


def _types(values: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        return tuple(allowed)
    unknown = sorted({name for name in names if name not in allowed})
    if unknown:
        raise InvalidRequest(
            f"_type names types this export cannot hold: {', '.join(unknown)}",
            expression=("_type",),
        )
    return tuple(sorted(set(names)))


def _since(values: Sequence[str]) -> datetime | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("_since may be given once", expression=("_since",))
    value = values[0].replace(" ", "+")  # an unencoded "+" of the offset arrives as a space
    try:
        return parse_instant(value)
    except ValueError:
        raise InvalidRequest("_since is not an instant", expression=("_since",)) from None


def _filters(values: Sequence[str], types: Sequence[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for value in values:
        resource_type, separator, query = value.partition("?")
        if not separator or resource_type not in types:
            raise InvalidRequest(
                "_typeFilter must be Type?query for an exported type", expression=("_typeFilter",)
            )
        parse_type_filter(resource_type, query)  # a bad query is a 400 now, not a failed job
        filters.setdefault(resource_type, []).append(query)
    return filters


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise InvalidRequest("The $export body must be a FHIR Parameters resource") from None


def _parameters_body(body: Any) -> list[tuple[str, str]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest("The $export body must be a FHIR Parameters resource")
    pairs = []
    for parameter in body.get("parameter") or []:
        values = [v for k, v in parameter.items() if k.startswith("value") and isinstance(v, str)]
        if not isinstance(parameter.get("name"), str) or len(values) != 1:
            raise InvalidRequest("Each $export parameter needs a name and one value")
        pairs.append((parameter["name"], values[0]))
    return pairs
