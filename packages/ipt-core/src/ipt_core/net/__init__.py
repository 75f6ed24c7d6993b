"""Outbound connections: which destinations the service may reach (SSRF guard)."""

from ipt_core.net.destinations import (
    DestinationPolicy,
    DestinationRefused,
    GuardedTransport,
    check_destination,
    guarded_client,
    redact_userinfo,
)

__all__ = [
    "DestinationPolicy",
    "DestinationRefused",
    "GuardedTransport",
    "check_destination",
    "guarded_client",
    "redact_userinfo",
]
