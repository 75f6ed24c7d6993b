"""FHIR media types: what requests may send and ask for, and what responses carry."""

from __future__ import annotations

from fastapi import Request

from ipt_core.fhir.errors import NotAcceptable, UnsupportedMediaType

__all__ = ["FHIR_JSON", "check_accept", "check_content_type", "require_fhir_accept"]

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
_FORMATS = frozenset({"json", *_JSON_TYPES})
_ANY = frozenset({"*/*", "application/*"})


def check_accept(request: Request) -> None:
    """Refuse (406) a request that asks only for formats other than FHIR JSON.

    `_format` overrides `Accept`, as the FHIR spec says.
    """
    # Most requests carry no `_format` (nor `%5Fformat`): their query is not parsed for it.
    has_format = b"format" in request.scope["query_string"]
    requested = request.query_params.get("_format") if has_format else None
    if requested is not None:
        # An unencoded "+" in a query string arrives as a space ("application/fhir json").
        if _media_type(requested.replace(" ", "+")) not in _FORMATS:
            raise NotAcceptable(f"_format={requested!r} is not supported; use json")
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    offered = {_media_type(part) for part in accept.split(",")}
    if not offered & (_JSON_TYPES | _ANY):
        raise NotAcceptable(f"Cannot produce {accept!r}; this server speaks {FHIR_JSON}")


async def require_fhir_accept(request: Request) -> None:
    """Router dependency: `check_accept` as a coroutine (sync dependencies cost a thread hop)."""
    check_accept(request)


def check_content_type(request: Request, *, allowed: frozenset[str] = _JSON_TYPES) -> None:
    """Refuse (415) a body that is not in one of the `allowed` media types."""
    content_type = request.headers.get("content-type")
    if content_type is None or _media_type(content_type) not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not supported; send {FHIR_JSON}"
        )


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()
