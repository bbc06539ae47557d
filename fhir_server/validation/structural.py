"""Structural validation with the fhir.resources R4B models.

The models check element names, cardinality of lists, primitive formats and choice
types. They are used only to validate: the stored and served JSON is the client's own,
never a model dump (which would reorder, drop or reformat values). A resource that
:func:`~.model_shapes.conforms` (a check ten times cheaper that only says yes when the
model would) skips the model; every other one gets the model's verdict and error paths.
"""

from __future__ import annotations

from pydantic import ValidationError

from ..errors import issue
from ..resource_types import RESOURCE_TYPES, model_class
from .model_shapes import conforms

#: what a model validator may raise outside pydantic's wrapper on odd input (an unknown contained
#: resourceType, a string where a primitive's ``_x`` object belongs, deep nesting)
MODEL_CRASHES = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


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
    if conforms(resource):
        return []
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
    except MODEL_CRASHES as exc:
        return [issue("error", "structure", f"invalid structure ({type(exc).__name__}: {exc})", [resource_type])]
    return []
