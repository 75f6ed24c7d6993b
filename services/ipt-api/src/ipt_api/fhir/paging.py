"""Opaque page cursors carried in `next`/`previous` links, and the absolute links that carry them.

A token is URL-safe base64 of JSON: the keyset position and a checksum binding it to the
search it belongs to. An edited, truncated or transplanted token is a 400. The checksum is
not a secret-keyed MAC: a forged position can only name a point in an order the caller could
ask for anyway, so integrity, not secrecy, is what matters here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import Request

from ipt_core.fhir.errors import InvalidRequest

__all__ = ["PAGE_PARAM", "decode_cursor", "encode_cursor", "page_link", "page_url"]

PAGE_PARAM = "_page"


def encode_cursor(position: dict[str, Any], *, bound_to: str = "") -> str:
    """Wrap a keyset position into an opaque URL-safe token, bound to the search `bound_to`."""
    payload = {"p": position, "c": _checksum(position, bound_to)}
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode_cursor(token: str, *, keys: frozenset[str], bound_to: str = "") -> dict[str, Any]:
    """Unwrap a token made by `encode_cursor` for the same search; anything else is a 400."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise _invalid() from None
    if not isinstance(payload, dict) or set(payload) != {"p", "c"}:
        raise _invalid()
    position = payload["p"]
    if not isinstance(position, dict) or set(position) != keys:
        raise _invalid()
    if payload["c"] != _checksum(position, bound_to):
        raise _invalid()
    return position


def page_link(request: Request, base_url: str, cursor: str | None = None) -> str:
    """Return the absolute URL of this request's page, or of the page at `cursor`."""
    return page_url(base_url, request.query_params.multi_items(), cursor)


def page_url(base_url: str, params: Sequence[tuple[str, str]], cursor: str | None = None) -> str:
    """Return `base_url` with `params` (any old cursor replaced by `cursor`) as its query."""
    kept = [(k, v) for k, v in params if k != PAGE_PARAM]
    if cursor is not None:
        kept.append((PAGE_PARAM, cursor))
    query = "&".join(f"{_quoted(key)}={_quoted(value)}" for key, value in kept)
    return f"{base_url}{'?' + query if query else ''}"


# `urllib.parse.urlencode`'s quoting (`quote_plus`: nothing safe but letters, digits and
# `_.-~`; a space is `+`; UTF-8 percent-encoded), but one regular-expression scan per string
# that stops only at what it quotes: `quote_plus` looks at every byte in Python, and the
# links of every searchset page cost 3% of a search (bench/PROFILE.md, "Thirteenth round").
_RESERVED = re.compile(r"[^A-Za-z0-9_.\-~]")


def _quoted(text: str) -> str:
    return _RESERVED.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    character = match.group()
    return "+" if character == " " else "".join(f"%{byte:02X}" for byte in character.encode())


def _checksum(position: Any, bound_to: str) -> str:
    data = orjson.dumps(position, option=orjson.OPT_SORT_KEYS) + bound_to.encode()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _invalid() -> InvalidRequest:
    return InvalidRequest("The page token is not valid", expression=(PAGE_PARAM,))
