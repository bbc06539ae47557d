"""Structural validation with the fhir.resources R4B models.

The models check element names, cardinality of lists, primitive formats and choice
types. They are used only to validate: the stored and served JSON is the client's own,
never a model dump (which would reorder, drop or reformat values).
"""

from __future__ import annotations

from pydantic import ValidationError

from ..errors import issue
from ..resource_types import RESOURCE_TYPES, model_class


def _expression(resource_type: str, loc: tuple) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and not part.startswith("function-") and "[" not in part:
            path += f".{part}"
    return path


def structural_issues(resource: dict) -> list[dict]:
    """OperationOutcome issues for a resource dict; empty when it is structurally valid."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in RESOURCE_TYPES:
        return [issue("error", "structure", f"unknown resourceType {resource_type!r}", ["resourceType"])]
    try:
        model_class(resource_type).model_validate(resource)
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False, include_input=False):
            message = error.get("msg", "invalid")
            loc = tuple(error.get("loc", ()))
            code = "structure" if error.get("type") in ("extra_forbidden", "list_type", "missing") else "value"
            if error.get("type") == "extra_forbidden":
                message = f"unknown element '{loc[-1] if loc else ''}'"
            issues.append(issue("error", code, message, [_expression(resource_type, loc)]))
        return issues or [issue("error", "structure", str(exc))]
    except (ValueError, TypeError) as exc:  # a model validator that raises outside pydantic's wrapper
        return [issue("error", "structure", str(exc), [resource_type])]
    return []
