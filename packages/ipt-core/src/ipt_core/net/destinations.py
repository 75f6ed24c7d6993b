"""Refuse outbound requests to internal addresses (server-side request forgery guard).

Webhook receivers and EHR endpoints are URLs that API clients choose, so without a guard the
service could be made to POST to its own loopback, the cloud metadata service
(169.254.169.254), the database, or anything on the hospital's private network, and its
delivery log would tell which of those ports answer. A destination is refused when any
address its host resolves to is loopback, private, link-local, unspecified, multicast,
reserved or otherwise not globally routable (IPv4, IPv6, IPv4 embedded in IPv6, and the
integer/octal IPv4 spellings the system resolver accepts, such as `2130706433`), unless an
explicit allow-list entry (`IPT_OUTBOUND_ALLOW`: CIDRs or host names) covers it.

Checked twice: when a URL is registered (`check_destination`, a clear error for the client)
and on every connect (`GuardedTransport`, and `PostClient` in `posts.py` for webhooks, both
through `checked_addresses`): the host is resolved, every address is checked,
and the connection goes to a checked address, so a DNS answer that changed after
registration (DNS rebinding) cannot reach an internal address. TLS still verifies the
certificate against the URL's host name.

Use:
    policy = DestinationPolicy.parse(settings.outbound_allow)
    await check_destination(url, policy)          # at registration: raises DestinationRefused
    async with guarded_client(policy, timeout=10) as client:   # at delivery
        await client.post(url, ...)               # raises DestinationRefused before connecting
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpcore
import httpx

from ipt_core.net.streams import CheckedStream

__all__ = [
    "DestinationPolicy",
    "DestinationRefused",
    "GuardedTransport",
    "check_destination",
    "checked_addresses",
    "guarded_client",
    "redact_userinfo",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES: Final = frozenset({"http", "https"})
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")  # embeds an IPv4 address
_RESOLVE_TIMEOUT_S: Final = 10.0
# One message for every refusal: which rule refused (or what the host resolved to) is not
# something a client should learn about the hospital's network.
REFUSED_MESSAGE: Final = (
    "The destination is not allowed: it is not a public address "
    "(an on-premise receiver must be listed in IPT_OUTBOUND_ALLOW)"
)


class DestinationRefused(Exception):
    """The URL's host is, or resolves to, an address the service must not connect to."""

    def __init__(self, message: str = REFUSED_MESSAGE) -> None:
        """Every refusal carries the same message unless the URL itself is malformed."""
        super().__init__(message)


@dataclass(frozen=True)
class DestinationPolicy:
    """Public addresses, plus an explicit allow-list of networks and host names.

    Attributes:
        networks: CIDRs allowed even though they are not public (on-premise receivers).
        hosts: host names allowed whatever they resolve to (lower case).
    """

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> DestinationPolicy:
        """Build a policy from `IPT_OUTBOUND_ALLOW` entries: `10.20.0.0/16`, `::1`, `ehr.local`.

        Raises:
            ValueError: an entry is neither a network nor a host name.
        """
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if not _looks_like_host(entry):
                    raise ValueError(f"not a CIDR or host name: {entry!r}") from None
                hosts.add(entry.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        """Whether the host name itself is on the allow-list."""
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        """Whether a connection to `address` is allowed: public, or on the allow-list."""
        if any(address in network for network in self.networks):
            return True
        return _is_public(address)

    def check(self, host: str, addresses: Sequence[IPAddress]) -> None:
        """Raise DestinationRefused unless the host, or every one of its addresses, is allowed."""
        if self.allows_host(host):
            return
        if not addresses or not all(self.allows_address(a) for a in addresses):
            raise DestinationRefused()


async def check_destination(url: str, allow: DestinationPolicy) -> None:
    """Check a URL when it is registered; raise DestinationRefused when it may not be used.

    The URL must be http(s) without userinfo (credentials in URLs end up in logs and
    screens; receivers authenticate the service by its signature instead). A literal
    address, or a host that resolves now, must pass `allow`. A host that does not resolve
    yet is accepted: every connection is checked again by `GuardedTransport`.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise DestinationRefused("The destination URL is not valid") from None
    if parsed.scheme not in _SCHEMES or not parsed.host:
        raise DestinationRefused("The destination must be an http or https URL with a host")
    if parsed.userinfo:
        raise DestinationRefused("The destination URL must not carry a user name or password")
    if allow.allows_host(parsed.host):
        return
    try:
        addresses = await resolve(parsed.host, parsed.port or 443)
    except OSError:
        return  # not resolvable now: refused or allowed at connect time
    allow.check(parsed.host, addresses)


async def resolve(host: str, port: int, timeout_s: float = _RESOLVE_TIMEOUT_S) -> list[IPAddress]:
    """Every address `host` resolves to (numeric spellings included), in resolver order.

    Raises:
        OSError: the name does not resolve (or not within `timeout_s`).
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM), timeout_s
        )
    except TimeoutError:
        raise OSError("name resolution timed out") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def checked_addresses(
    policy: DestinationPolicy, host: str, port: int, timeout_s: float | None = None
) -> list[IPAddress]:
    """The addresses to connect to for `host`: every one it resolves to, each allowed by
    `policy` (connect to these, never resolve again: DNS rebinding).

    Raises:
        DestinationRefused: one of them (or the host) is not allowed.
        OSError: the name does not resolve.
    """
    addresses = await resolve(host, port, timeout_s or _RESOLVE_TIMEOUT_S)
    policy.check(host, addresses)
    return addresses


def redact_userinfo(url: str) -> str:
    """The URL without its user name and password, for responses and logs."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid URL>"
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else url


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, and connects to a checked address only."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(self.policy, host, port, timeout)
        except OSError as error:
            raise httpcore.ConnectError("name resolution failed") from error
        failure: Exception | None = None
        for address in addresses:  # only checked addresses: no second resolution
            try:
                stream = await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return CheckedStream(stream)  # cheap reuse checks (ipt_core/net/streams.py)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # resolve() never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused()

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection passes `policy` (no proxies, no env)."""

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        limits: httpx.Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        http2: bool = False,
    ) -> None:
        """Connect only where `policy` allows; TLS verified with `ssl_context` (default CAs)."""
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        context = ssl_context or httpx.create_ssl_context()  # loading CAs is slow: once
        super().__init__(verify=context, limits=limits, http2=http2, trust_env=False)
        # The pool is rebuilt with the guarded network backend (httpx takes no backend
        # argument); tests/unit/net checks that every connection still goes through it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=_GuardedBackend(policy),
        )


def guarded_client(policy: DestinationPolicy, **client_options: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` that reaches only destinations `policy` allows.

    `trust_env` is off: a proxy from the environment would connect on the service's behalf
    and bypass the check. Redirects are not followed unless asked (each hop is checked
    anyway, since every connection goes through the guarded transport).
    """
    limits = client_options.pop("limits", httpx.Limits(max_connections=100))
    client_options.setdefault("follow_redirects", False)
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, limits=limits), trust_env=False, **client_options
    )


def _is_public(address: IPAddress) -> bool:
    """Globally routable unicast; IPv4 carried inside IPv6 is judged as that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _is_public(embedded)
    return address.is_global and not address.is_multicast and not address.is_reserved


def _looks_like_host(entry: str) -> bool:
    labels = entry.rstrip(".").split(".")
    return all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels)
