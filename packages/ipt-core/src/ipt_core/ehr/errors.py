"""What can go wrong when talking to an EHR, as the sync loops need to tell it apart.

Messages name HTTP statuses and error kinds only, never a resource id or patient data: they
end up in the status endpoint, logs and dead letters.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DestinationNotAllowed",
    "PatientNotMatched",
    "RemoteAuthFailed",
    "RemoteConflict",
    "RemoteError",
    "RemoteNotFound",
    "RemoteRejected",
    "RemoteUnavailable",
]


class RemoteError(Exception):
    """Any failure of a call to an EHR. `outcome` is a short label for metrics and status."""

    outcome = "error"


class RemoteUnavailable(RemoteError):
    """Worth retrying: a network error, a timeout, 429, 502, 503 or 504."""

    outcome = "unavailable"

    def __init__(self, reason: str, retry_after: str | None = None) -> None:
        """`reason` is e.g. `timeout`, `connect`, `http-503`; `retry_after` the raw header."""
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class DestinationNotAllowed(RemoteUnavailable):
    """The EHR's address is internal and not in `IPT_OUTBOUND_ALLOW`: nothing was sent.

    Retried like an outage (the allow-list may be fixed and the process restarted), but
    counted under its own outcome so the status endpoint and metrics say why.
    """

    outcome = "destination-refused"

    def __init__(self) -> None:
        """No details: which rule refused the address is not for logs or clients."""
        super().__init__("destination-refused")


class RemoteConflict(RemoteError):
    """409 or 412: the EHR's version changed under us; re-read it and apply our fields again."""

    outcome = "conflict"


class RemoteNotFound(RemoteError):
    """404 or 410: the remote resource is not there (any more)."""

    outcome = "not-found"

    def __init__(self, status: int) -> None:
        """`status` is 404 or 410."""
        super().__init__(f"http-{status}")
        self.status = status


class RemoteRejected(RemoteError):
    """The EHR refused the content (4xx): a dead letter, with the EHR's OperationOutcome."""

    outcome = "rejected"

    def __init__(self, status: int, operation_outcome: dict[str, Any] | None) -> None:
        """`operation_outcome` is the EHR's response body when it was an OperationOutcome."""
        super().__init__(f"http-{status}")
        self.status = status
        self.operation_outcome = operation_outcome


class RemoteAuthFailed(RemoteError):
    """The EHR (or its token endpoint) refused our credentials, also after a fresh token."""

    outcome = "auth"


class PatientNotMatched(RemoteError):
    """No (or more than one) EHR Patient carries the patient's identifier: never guessed."""

    outcome = "patient-unmatched"
