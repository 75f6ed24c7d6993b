"""Errors of the FHIR layer. Each carries its HTTP status and FHIR issue code.

The API renders every one of them as an OperationOutcome with that status; anything else
that escapes is an unexpected failure and becomes a 500 without internals.

    FhirError
    ├── InvalidRequest        400 invalid       (malformed request, bad parameter)
    ├── InvalidResource       400 invalid       (the resource fails R4 validation)
    ├── NotAuthorized         403 forbidden
    ├── ResourceNotFound      404 not-found
    ├── MethodNotAllowed      405 not-supported
    ├── NotAcceptable         406 not-supported
    ├── VersionConflict       409 conflict
    ├── ResourceGone          410 deleted
    ├── PreconditionFailed    412 conflict      (stale If-Match)
    ├── MultipleMatches       412 multiple-matches (conditional operation matched several)
    ├── PayloadTooLarge       413 too-long
    ├── UnsupportedMediaType  415 not-supported
    ├── BusinessRuleViolated  422 business-rule (e.g. an IPT rule)
    └── ServiceUnavailable    503 transient     (the database is unreachable, overloaded...)
        └── CommitOutcomeUnknown 503 transient  (connection lost at COMMIT: may have committed)

A 503 carries `Retry-After` (`retry_after_s`): clients and integration engines retry then.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BusinessRuleViolated",
    "CommitOutcomeUnknown",
    "FhirError",
    "InvalidRequest",
    "InvalidResource",
    "Issue",
    "MethodNotAllowed",
    "MultipleMatches",
    "NotAcceptable",
    "NotAuthorized",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ResourceGone",
    "ResourceNotFound",
    "ServiceUnavailable",
    "UnsupportedMediaType",
    "VersionConflict",
]


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"


class FhirError(Exception):
    """A request the server refuses, with the status and issues to answer it with."""

    status = 400
    code = "invalid"
    retry_after_s: int | None = None  # sent as `Retry-After` when set

    def __init__(
        self, diagnostics: str, *, expression: tuple[str, ...] = (), issues: tuple[Issue, ...] = ()
    ) -> None:
        """Create the error with one issue, or with `issues` when several are known."""
        super().__init__(diagnostics)
        self.issues = issues or (Issue(self.code, diagnostics, expression),)


class InvalidRequest(FhirError):
    """The request itself is malformed."""


class InvalidResource(FhirError):
    """The resource is not valid FHIR R4."""


class NotAuthorized(FhirError):
    """The principal may not perform this interaction."""

    status, code = 403, "forbidden"


class ResourceNotFound(FhirError):
    """No such resource type or resource."""

    status, code = 404, "not-found"


class MethodNotAllowed(FhirError):
    """The interaction is not supported on this URL."""

    status, code = 405, "not-supported"


class NotAcceptable(FhirError):
    """The client asked for a format the server cannot produce."""

    status, code = 406, "not-supported"


class VersionConflict(FhirError):
    """The write conflicts with the resource's current state."""

    status, code = 409, "conflict"


class ResourceGone(FhirError):
    """The resource was deleted."""

    status, code = 410, "deleted"


class PreconditionFailed(FhirError):
    """`If-Match` names a version that is no longer current."""

    status, code = 412, "conflict"


class MultipleMatches(FhirError):
    """A conditional interaction's criteria matched more than one resource."""

    status, code = 412, "multiple-matches"


class PayloadTooLarge(FhirError):
    """The request body is over the configured limit."""

    status, code = 413, "too-long"


class UnsupportedMediaType(FhirError):
    """The request body is not in a format the server reads."""

    status, code = 415, "not-supported"


class BusinessRuleViolated(FhirError):
    """The resource is valid FHIR but breaks a rule of the service (e.g. an IPT rule)."""

    status, code = 422, "business-rule"


class ServiceUnavailable(FhirError):
    """The database cannot serve the request now (restart, failover, overload, timeout).

    Nothing was changed: the client may retry the same request after `retry_after_s`.
    """

    status, code = 503, "transient"

    def __init__(self, diagnostics: str, *, retry_after_s: int = 5) -> None:
        """Create the error; `retry_after_s` is the client's suggested wait."""
        super().__init__(diagnostics)
        self.retry_after_s = retry_after_s


class CommitOutcomeUnknown(ServiceUnavailable):
    """The connection was lost while the write committed: it may or may not have been stored.

    The client must read the resource (or search by its identifier, or resend with the same
    conditional create / `Idempotency-Key`) before retrying, or it may write it twice.
    """
