"""Errors of the IPT domain API. Each is a FhirError, so clients get an OperationOutcome.

FhirError
├── CourseStateConflict    409 business-rule  (the course's status does not allow it)
├── UnknownReference       422 not-found      (the body names a resource that is not there)
└── IdempotencyKeyReused   422 business-rule  (same key, different request)
"""

from __future__ import annotations

from ipt_core.fhir.errors import FhirError

__all__ = ["CourseStateConflict", "IdempotencyKeyReused", "UnknownReference"]


class CourseStateConflict(FhirError):
    """The course is in a status that does not allow the change (e.g. a completed course)."""

    status, code = 409, "business-rule"


class UnknownReference(FhirError):
    """The request names a Patient or Practitioner that does not exist."""

    status, code = 422, "not-found"


class IdempotencyKeyReused(FhirError):
    """An `Idempotency-Key` already answered a different request."""

    status, code = 422, "business-rule"
