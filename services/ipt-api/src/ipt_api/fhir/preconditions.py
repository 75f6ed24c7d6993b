"""HTTP preconditions on FHIR versions: `If-Match` and `If-None-Match` with weak ETags."""

from __future__ import annotations

import re

from fastapi import Request

from ipt_core.fhir.errors import InvalidRequest
from ipt_core.fhir.model import StoredResource

__all__ = ["if_match_version", "not_modified"]

_ETAG = re.compile(r'^\s*(?:W/)?"?(?P<version>\d+)"?\s*$')


def if_match_version(request: Request) -> int | None:
    """Return the version `If-Match` names (`W/"3"`, `"3"` or `3`), if the header is present."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    match = _ETAG.match(header)
    if match is None:
        raise InvalidRequest(f'If-Match {header!r} is not a version ETag such as W/"1"')
    return int(match["version"])


def not_modified(request: Request, stored: StoredResource) -> bool:
    """Whether `If-None-Match` names the current version (or `*`), so 304 answers."""
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    for tag in header.split(","):
        if tag.strip() == "*":
            return True
        match = _ETAG.match(tag)
        if match is not None and int(match["version"]) == stored.version_id:
            return True
    return False
