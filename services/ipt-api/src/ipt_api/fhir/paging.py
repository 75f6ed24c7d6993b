"""Opaque page cursors carried in `next` links, and the absolute links that carry them."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlencode

import orjson
from fastapi import Request

from ipt_core.fhir.errors import InvalidRequest

__all__ = ["PAGE_PARAM", "decode_cursor", "encode_cursor", "page_link"]

PAGE_PARAM = "_page"


def encode_cursor(position: dict[str, int | str]) -> str:
    """Wrap a keyset position into an opaque URL-safe token."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(token: str, *, keys: frozenset[str]) -> dict[str, int | str]:
    """Unwrap a token made by `encode_cursor`; anything else is a 400."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        position = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidRequest("The page token is not valid", expression=(PAGE_PARAM,)) from None
    if not isinstance(position, dict) or set(position) != keys:
        raise InvalidRequest("The page token is not valid", expression=(PAGE_PARAM,))
    if not all(isinstance(value, int | str) for value in position.values()):
        raise InvalidRequest("The page token is not valid", expression=(PAGE_PARAM,))
    return position


def page_link(request: Request, base_url: str, cursor: str | None = None) -> str:
    """Return the absolute URL of this request's page, or of the page at `cursor`."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != PAGE_PARAM]
    if cursor is not None:
        params.append((PAGE_PARAM, cursor))
    query = urlencode(params)
    return f"{base_url}{'?' + query if query else ''}"
