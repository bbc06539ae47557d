"""The one exception type: an HTTP status plus an OperationOutcome, rendered in one place."""

from __future__ import annotations

from typing import Iterable


def issue(
    severity: str,
    code: str,
    diagnostics: str,
    expression: Iterable[str] | None = None,
) -> dict:
    """One OperationOutcome.issue entry."""
    entry: dict = {"severity": severity, "code": code, "diagnostics": diagnostics}
    expression = list(expression or [])
    if expression:
        entry["expression"] = expression
    return entry


def operation_outcome(issues: list[dict]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": issues}


class FhirError(Exception):
    """Raised anywhere a client-caused (or server) failure must answer with an OperationOutcome."""

    def __init__(
        self,
        status: int,
        diagnostics: str,
        code: str = "processing",
        expression: Iterable[str] | None = None,
        *,
        issues: list[dict] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(diagnostics)
        self.status = status
        self.issues = issues or [issue("error", code, diagnostics, expression)]
        self.headers = headers or {}

    @property
    def outcome(self) -> dict:
        return operation_outcome(self.issues)


def bad_request(diagnostics: str, expression: Iterable[str] | None = None, code: str = "invalid") -> FhirError:
    return FhirError(400, diagnostics, code, expression)


def not_found(diagnostics: str) -> FhirError:
    return FhirError(404, diagnostics, "not-found")
