"""Search routes: `GET /fhir/{type}` and `POST /fhir/{type}/_search`, and searchset Bundles.

The search itself is ipt_core.fhir.search; this module reads the parameters (query string, or
form body for POST), honours `Prefer: handling=strict`, turns page tokens into positions and
back, and renders the Bundle with absolute `self`/`next`/`previous` links.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response

from ipt_api.authz import authorize, plan_search, visible_included
from ipt_api.fhir.bundles import Links, searchset_bundle
from ipt_api.fhir.context import FhirContext, FhirContextDep
from ipt_api.fhir.paging import PAGE_PARAM, decode_cursor, encode_cursor, page_url
from ipt_api.fhir.responses import json_response
from ipt_api.fhir.routes import FhirOperation
from ipt_api.principal import Principal
from ipt_api.settings import ApiSettings
from ipt_core.fhir.errors import UnsupportedMediaType
from ipt_core.fhir.search import Position as PagePosition
from ipt_core.fhir.search import (
    SearchLimits,
    SearchQuery,
    SearchRunner,
    parse_search,
    position_from_json,
    position_to_json,
    run_search,
    sort_plan,
    subset_content,
)

__all__ = ["SEARCH_OPERATIONS", "prefers_strict", "searchset"]

_FORM = "application/x-www-form-urlencoded"
_POSITION_KEYS = frozenset({"s", "k", "b"})


async def search(ctx: FhirContextDep) -> Response:
    """Search a type with the parameters in the query."""
    return await _answer(ctx, ctx.request.query_params.multi_items())


async def search_post(ctx: FhirContextDep) -> Response:
    """Search a type with the parameters in a form body (and the query)."""
    form = await _form(ctx.request, ctx.settings)
    return await _answer(ctx, [*ctx.request.query_params.multi_items(), *form])


async def _answer(ctx: FhirContext, params: list[tuple[str, str]]) -> Response:
    principal = await ctx.principal()
    runner = await ctx.searcher()
    bundle = await searchset(
        runner,
        principal,
        ctx.type,
        params,
        base=ctx.base,
        strict=prefers_strict(ctx.request),
        limits=ctx.settings.search_limits,
    )
    return json_response(bundle)


_BUNDLE = {"_200": "Bundle"}
SEARCH_OPERATIONS = (
    FhirOperation(
        "GET", "/{type}", search, "Search {t}s (parameters in the query)", _BUNDLE, tags=("{t}",)
    ),
    FhirOperation(
        "POST",
        "/{type}/_search",
        search_post,
        "Search {t}s (parameters in a form body)",
        _BUNDLE,
        body="SearchForm",
        tags=("{t}",),
    ),
)


async def searchset(
    runner: SearchRunner,
    principal: Principal,
    resource_type: str,
    params: Sequence[tuple[str, str]],
    *,
    base: str,
    strict: bool,
    limits: SearchLimits,
) -> dict[str, Any]:
    """Run the search `params` describe, as `principal` may, as a `searchset` Bundle.

    The authorizer plans the search first (types reached, compartment), so nothing is
    resolved before the caller is known to be allowed it.
    """
    criteria = [(k, v) for k, v in params if k != PAGE_PARAM]
    token = next((v for k, v in reversed(params) if k == PAGE_PARAM), None)
    names = [name for name, _ in criteria]
    authorize(principal, resource_type, "search", names=names)  # before parsing anything
    parsed = parse_search(resource_type, criteria, strict=strict, limits=limits)
    query = plan_search(principal, parsed, names)
    position = _position(parsed, token) if token else None
    page = await run_search(runner, query, position)
    url = f"{base}/{resource_type}"
    links: Links = {
        "self": page_url(url, criteria, token),
        "next": _link(url, criteria, query, page.next),
        "previous": _link(url, criteria, query, page.previous),
    }
    return searchset_bundle(
        base=base,
        links=links,
        matches=[(m, _content(query, m.content)) for m in page.matches],
        included=[
            (i, _content(query, i.content)) for i in visible_included(principal, page.included)
        ],
        total=page.total,
        issues=page.issues,
    )


def prefers_strict(request: Request) -> bool:
    """Whether the client asked for `Prefer: handling=strict` (unknown parameters are 400)."""
    prefer = request.headers.get("prefer", "")
    return any(part.strip() == "handling=strict" for part in prefer.replace(";", ",").split(","))


def _position(query: SearchQuery, token: str) -> PagePosition:
    data = decode_cursor(token, keys=_POSITION_KEYS, bound_to=_binding(query))
    return position_from_json(sort_plan(query), data)


def _link(
    url: str, criteria: list[tuple[str, str]], query: SearchQuery, position: PagePosition | None
) -> str | None:
    if position is None:
        return None
    return page_url(
        url, criteria, encode_cursor(position_to_json(position), bound_to=_binding(query))
    )


def _binding(query: SearchQuery) -> str:
    # A token belongs to one search: its type, criteria and order (not _count or _elements).
    return query.resource_type + "?" + "&".join(f"{k}={v}" for k, v in query.signature)


def _content(query: SearchQuery, content: str | None) -> str:
    return subset_content(content or "{}", query.resource_type, query.summary, query.elements)


async def _form(request: Request, settings: ApiSettings) -> list[tuple[str, str]]:
    raw = await request.body()
    if not raw.strip():
        return []
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise UnsupportedMediaType(f"POST _search takes a form body ({_FORM})")
    return parse_qsl(raw.decode(), keep_blank_values=True)
