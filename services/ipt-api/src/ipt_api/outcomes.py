"""OperationOutcome: the body of every FHIR error, and of informational answers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ipt_core.fhir.errors import Issue

__all__ = ["operation_outcome"]


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """Build an OperationOutcome resource from `issues` (with a generated narrative)."""
    rendered = [_issue(issue) for issue in issues]
    summary = "; ".join(issue["diagnostics"] for issue in rendered)
    return {
        "resourceType": "OperationOutcome",
        "text": {"status": "generated", "div": _div(summary)},
        "issue": rendered,
    }


def _issue(issue: Issue) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "severity": issue.severity,
        "code": issue.code,
        "diagnostics": issue.diagnostics,
    }
    if issue.expression:
        rendered["expression"] = list(issue.expression)
    return rendered


def _div(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{escaped}</p></div>'
