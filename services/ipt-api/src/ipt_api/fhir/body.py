"""Reading a FHIR JSON body: one JSON object, parsed by the shared strict parser.

The size limit is not checked here: the request gate (ipt_api.gate) counts every route's body
bytes as they stream in, after authentication (README, "Input limits").
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ipt_api.json_input import parse_json
from ipt_core.fhir.errors import InvalidRequest

__all__ = ["read_json_object"]


async def read_json_object(request: Request, *, max_depth: int) -> dict[str, Any]:
    """Read the body as one JSON object no deeper than `max_depth` levels."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("The request needs a JSON body")
    parsed = parse_json(raw, max_depth=max_depth)
    if not isinstance(parsed, dict):
        raise InvalidRequest("The body must be a JSON object (a FHIR resource)")
    return parsed
