"""Reading a FHIR JSON body: size limit, JSON syntax, nesting depth, a JSON object."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from ipt_core.fhir.errors import InvalidRequest, PayloadTooLarge

__all__ = ["read_json_object", "read_limited"]


async def read_limited(request: Request, limit: int) -> bytes:
    """Read the body, refusing (413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, *, limit: int, max_depth: int) -> dict[str, Any]:
    """Read the body as one JSON object no deeper than `max_depth` levels."""
    raw = await read_limited(request, limit)
    if not raw.strip():
        raise InvalidRequest("The request needs a JSON body")
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"The body is not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("The body must be a JSON object (a FHIR resource)")
    if _depth(parsed) > max_depth:
        raise InvalidRequest(f"The JSON is nested deeper than {max_depth} levels")
    return parsed


def _depth(value: Any) -> int:
    # Iterative, so a hostile body cannot exhaust the interpreter's stack.
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, level = pending.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict):
            pending.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            pending.extend((child, level + 1) for child in node)
    return deepest
