"""One EHR's FHIR REST API, as the sync loops use it: requests, paging, typed failures.

Every request gets the endpoint's credentials (one token refresh on a 401), keeps to its
`max_requests_per_s`, is retried with backoff on what is worth retrying (network errors,
timeouts, 429 with `Retry-After`, 502/503/504), and runs in a span that names the host only
(URLs carry patient ids). The httpx client is made in ONE place, `ehr_http_client`, and
every connection it makes passes the destination guard (`ipt_core.net.destinations`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson
from opentelemetry import trace

from ipt_core.ehr import errors
from ipt_core.ehr.auth import Authorizer, authorizer_for
from ipt_core.ehr.endpoints import EhrEndpoint
from ipt_core.net.destinations import DestinationPolicy, DestinationRefused, GuardedTransport

__all__ = ["FHIR_JSON", "RemoteEhr", "RetryDelay", "ehr_http_client", "version_of"]

FHIR_JSON: Final = "application/fhir+json"
_RETRYABLE: Final = frozenset({429, 500, 502, 503, 504})
_tracer = trace.get_tracer("ipt_core.ehr")

# Given the attempt number (1 = the first failure) and the failure, seconds to wait.
RetryDelay = Callable[[int, errors.RemoteUnavailable], float]


def ehr_http_client(
    *,
    timeout_s: float,
    destinations: DestinationPolicy,
    max_connections: int = 10,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """THE constructor of every EHR connection: keep-alive pool, timeouts, no redirects.

    Every connection passes the destination guard (`destinations`, from
    `IPT_OUTBOUND_ALLOW`): an EHR address that is internal and not allowed is refused
    before connecting. `transport` replaces the network (tests of faults only).
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(
        transport=transport or GuardedTransport(destinations, limits=limits),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        limits=limits,
        headers={"Accept": FHIR_JSON},
        follow_redirects=False,
        trust_env=False,  # a proxy from the environment would bypass the guard
    )


def version_of(resource: Mapping[str, Any], etag: str | None = None) -> str | None:
    """The version id of a remote resource (opaque: any string), from meta or the ETag."""
    meta = resource.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("versionId"), str):
        return str(meta["versionId"])
    if etag:
        return etag.removeprefix("W/").strip('"')
    return None


@dataclass(frozen=True)
class _Outgoing:
    """One request to the EHR, as every attempt (and a retry with a fresh token) sends it."""

    method: str
    url: str
    params: Mapping[str, str] | None
    body: dict[str, Any] | None
    headers: Mapping[str, str] | None


class RemoteEhr:
    """Requests to one EHR endpoint."""

    def __init__(
        self,
        endpoint: EhrEndpoint,
        http: httpx.AsyncClient,
        *,
        attempts: int = 4,
        retry_delay: RetryDelay = lambda attempt, error: min(0.5 * 2**attempt, 30.0),
        authorizer: Authorizer | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`attempts` per request; `retry_delay` decides the waits between them."""
        self.endpoint = endpoint
        self.http = http
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.authorizer = authorizer or authorizer_for(endpoint)
        self.sleep = sleep
        self._pace_lock = asyncio.Lock()
        self._next_slot = 0.0

    # -- FHIR interactions -------------------------------------------------------------------

    async def metadata(self) -> dict[str, Any]:
        """The EHR's CapabilityStatement."""
        return _json(await self.request("GET", "metadata"))

    async def read(self, resource_type: str, id_: str) -> dict[str, Any]:
        """Read one resource; RemoteNotFound when it is not there (404) or gone (410)."""
        return _json(await self.request("GET", f"{resource_type}/{id_}"))

    async def search(self, resource_type: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """The resources of the first page of a search (mode `match` entries only)."""
        bundle = _json(await self.request("GET", resource_type, params=dict(params)))
        return _matches(bundle)

    async def pages(
        self, resource_type: str, params: Mapping[str, str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a search, following `next` links on the EHR's own host only."""
        response = await self.request("GET", resource_type, params=dict(params))
        while True:
            bundle = _json(response)
            yield _matches(bundle)
            link = _next_link(bundle)
            if link is None or not self._own(link):
                return
            response = await self.request("GET", link)

    async def create(self, resource_type: str, body: dict[str, Any]) -> tuple[str, str | None]:
        """POST a resource; return its remote id and version."""
        response = await self.request("POST", resource_type, json=body)
        return await self._written(response)

    async def update(
        self, resource_type: str, id_: str, body: dict[str, Any], *, if_match: str | None = None
    ) -> tuple[str, str | None]:
        """PUT a resource (If-Match when a version is known); return its id and version."""
        headers = {"If-Match": f'W/"{if_match}"'} if if_match else {}
        response = await self.request(
            "PUT", f"{resource_type}/{id_}", json={**body, "id": id_}, headers=headers
        )
        return await self._written(response)

    async def conditional_update(
        self, resource_type: str, criteria: Mapping[str, str], body: dict[str, Any]
    ) -> tuple[str, str | None]:
        """PUT Type?criteria: update the one match or create; return its id and version."""
        response = await self.request("PUT", resource_type, params=dict(criteria), json=body)
        return await self._written(response)

    # -- requests ----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send, retrying what is worth retrying; raise a typed RemoteError on failure."""
        url = path_or_url if "://" in path_or_url else f"{self.endpoint.base_url}/{path_or_url}"
        attempt = 0
        while True:
            try:
                return await self._once(_Outgoing(method, url, params, json, headers))
            except errors.RemoteUnavailable as error:
                attempt += 1
                # An EHR that is overloaded or down is given the backoff by every caller,
                # not only by this request: the next request of any item waits for it too.
                self._hold(self.retry_delay(attempt, error))
                if attempt >= self.attempts or _maybe_written(method, error):
                    raise

    async def _once(self, outgoing: _Outgoing) -> httpx.Response:
        response = await self._send(outgoing, fresh=False)
        if response.status_code == 401:
            response = await self._send(outgoing, fresh=True)
        return _checked(response)

    async def _send(self, outgoing: _Outgoing, *, fresh: bool) -> httpx.Response:
        method, url, body = outgoing.method, outgoing.url, outgoing.body
        await self._pace()
        all_headers = {**(outgoing.headers or {})}
        authorization = await self.authorizer.header(self.http, fresh=fresh)
        if authorization:
            all_headers["Authorization"] = authorization
        content = None
        if body is not None:
            all_headers["Content-Type"] = FHIR_JSON
            all_headers["Prefer"] = "return=representation"
            content = orjson.dumps(body)
        attributes = {
            "server.address": self.endpoint.host,
            "http.request.method": method,
            "ipt.ehr.endpoint": self.endpoint.name,
        }
        with _tracer.start_as_current_span(
            f"EHR {method}", kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            try:
                response = await self.http.request(
                    method, url, params=outgoing.params, content=content, headers=all_headers
                )
            except DestinationRefused:
                span.set_attribute("error.type", "destination-refused")
                raise errors.DestinationNotAllowed() from None  # nothing was sent
            except (httpx.ConnectError, httpx.ConnectTimeout):
                span.set_attribute("error.type", "connect")
                raise errors.RemoteUnavailable("connect") from None  # never reached the EHR
            except httpx.TimeoutException:
                span.set_attribute("error.type", "timeout")
                raise errors.RemoteUnavailable("timeout") from None
            except httpx.TransportError:
                span.set_attribute("error.type", "network")
                raise errors.RemoteUnavailable("network") from None
            span.set_attribute("http.response.status_code", response.status_code)
            return response

    async def _pace(self) -> None:
        # At most `max_requests_per_s` request starts per second, shared by all callers,
        # and none before a backoff the EHR asked for (`_hold`) has passed.
        interval = 1.0 / self.endpoint.max_requests_per_s
        async with self._pace_lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + interval
        if wait > 0:
            await self.sleep(wait)

    def _hold(self, delay_s: float) -> None:
        """Start no request to this EHR for `delay_s` seconds (a backoff or `Retry-After`)."""
        self._next_slot = max(self._next_slot, time.monotonic() + delay_s)

    async def _written(self, response: httpx.Response) -> tuple[str, str | None]:
        body = _json(response) if response.content else {}
        id_ = body.get("id") if body.get("resourceType") != "OperationOutcome" else None
        location = response.headers.get("location") or response.headers.get("content-location")
        if not isinstance(id_, str) and location:
            id_ = _id_from_location(location)
        if not isinstance(id_, str):
            raise errors.RemoteRejected(response.status_code, None)
        version = version_of(body, response.headers.get("etag"))
        if version is None and location and "/_history/" in location:
            version = location.rsplit("/_history/", 1)[1].strip("/")
        return id_, version

    def _own(self, url: str) -> bool:
        return url.startswith(self.endpoint.base_url + "/") or url.startswith(
            self.endpoint.base_url + "?"
        )


def _maybe_written(method: str, error: errors.RemoteUnavailable) -> bool:
    """A POST that may have reached the EHR is not sent again blindly: it could create a
    second copy. The caller searches by our identifier first (search-then-write)."""
    return method == "POST" and error.reason in {"timeout", "network"}


def _checked(response: httpx.Response) -> httpx.Response:
    status = response.status_code
    if status < 400:
        return response
    if status in _RETRYABLE:
        raise errors.RemoteUnavailable(f"http-{status}", response.headers.get("retry-after"))
    if status in {401, 403}:
        raise errors.RemoteAuthFailed(f"http-{status}")
    if status in {404, 410}:
        raise errors.RemoteNotFound(status)
    if status in {409, 412}:
        raise errors.RemoteConflict(f"http-{status}")
    raise errors.RemoteRejected(status, _outcome(response))


def _outcome(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return body
    return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise errors.RemoteUnavailable("invalid-json") from None
    if not isinstance(body, dict):
        raise errors.RemoteUnavailable("invalid-json")
    return body


def _matches(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    for entry in bundle.get("entry", []) or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        mode = (entry.get("search") or {}).get("mode", "match") if isinstance(entry, dict) else ""
        if isinstance(resource, dict) and mode == "match":
            found.append(resource)
    return found


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link", []) or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) else None
    return None


def _id_from_location(location: str) -> str | None:
    path = location.split("/_history/", 1)[0].rstrip("/")
    return path.rsplit("/", 1)[-1] or None
