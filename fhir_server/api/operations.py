"""The table of FHIR operations (``$name``): one registration per operation, found by its name.

Modules that define operations decorate handlers with :func:`operation`; the app imports
the modules listed in ``fhir_server.app.OPERATION_MODULES`` so the table is filled before
the first request, and the CapabilityStatement lists exactly what is registered here.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import Response

from ..errors import FhirError

LEVELS = ("system", "type", "instance")


@dataclass
class OperationContext:
    request: Request
    name: str
    resource_type: str | None
    id: str | None
    #: a FHIR Parameters resource: the POSTed one, or built from the query string
    parameters: dict
    #: the parsed body when it is not a Parameters resource (e.g. a resource POSTed to $validate)
    body: dict | None
    raw_body: bytes
    repository: Any
    settings: Any

    def param(self, name: str, default: Any = None) -> Any:
        """The first value of a named parameter (valueX, resource or part list)."""
        for parameter in self.parameters.get("parameter") or []:
            if parameter.get("name") == name:
                if "resource" in parameter:
                    return parameter["resource"]
                for key, value in parameter.items():
                    if key.startswith("value"):
                        return value
                return parameter.get("part", default)
        return default

    def text(self, name: str) -> str | None:
        """The first value (valueX) of the parameters called ``name``, as text; None when absent."""
        values = self.values(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        """Every value (valueX, as text) of the parameters called ``name``, in order."""
        return [str(value) for parameter in self.parameters.get("parameter") or [] if parameter.get("name") == name
                for key, value in parameter.items() if key.startswith("value")]


@dataclass
class Operation:
    name: str
    handler: Callable
    types: tuple[str, ...] | None
    levels: tuple[str, ...]
    methods: tuple[str, ...]
    affects_state: bool
    definition: dict | None = field(default=None)
    #: False for endpoints that only serve another operation (a status URL, a file), not in the CapabilityStatement
    listed: bool = True

    def applies(self, level: str, resource_type: str | None) -> bool:
        return level in self.levels and (self.types is None or resource_type is None or resource_type in self.types)


_REGISTRY: dict[str, list[Operation]] = {}


def operation(name: str, *, types: list[str] | tuple[str, ...] | None = None,
              levels: tuple[str, ...] = ("type", "instance"), methods: tuple[str, ...] = ("GET", "POST"),
              affects_state: bool = False, definition: dict | None = None, listed: bool = True):
    """Register a handler for ``$name`` (handlers may be plain or async functions)."""
    unknown = set(levels) - set(LEVELS)
    if unknown:
        raise ValueError(f"unknown operation levels {unknown}")

    def register(handler: Callable) -> Callable:
        entry = Operation(name.lstrip("$"), handler, tuple(types) if types else None, tuple(levels),
                          tuple(m.upper() for m in methods), affects_state, definition, listed)
        _REGISTRY.setdefault(entry.name, [])
        _REGISTRY[entry.name] = [op for op in _REGISTRY[entry.name] if op.types != entry.types
                                 or op.levels != entry.levels] + [entry]
        return handler

    return register


def registered() -> list[Operation]:
    return [op for ops in _REGISTRY.values() for op in ops]


def find(name: str, level: str, resource_type: str | None, method: str) -> Operation:
    candidates = [op for op in _REGISTRY.get(name, []) if op.applies(level, resource_type)]
    if not candidates:
        where = f"{resource_type} {level}" if resource_type else level
        raise FhirError(404, f"operation ${name} is not supported at {where} level", "not-supported")
    allowed = [op for op in candidates if method in op.methods]
    if not allowed:
        raise FhirError(405, f"operation ${name} does not accept {method}", "not-supported")
    specific = [op for op in allowed if op.types is not None]
    return (specific or allowed)[0]


_STATE_LOCK = threading.Lock()


def app_state(context: OperationContext, name: str, make: Callable[[], Any]) -> Any:
    """An object operations keep on the app (an ingestor, the export jobs): made once, on first use."""
    state = context.request.app.state
    found = getattr(state, name, None)
    if found is None:
        with _STATE_LOCK:
            found = getattr(state, name, None)
            if found is None:
                found = make()
                setattr(state, name, found)
    return found


def query_parameters(request: Request) -> dict:
    """A Parameters resource from the query string (each value as valueString)."""
    return {"resourceType": "Parameters",
            "parameter": [{"name": k, "valueString": v} for k, v in request.query_params.multi_items()
                          if not k.startswith("_format") and k != "_pretty"]}


async def invoke(op: Operation, context: OperationContext) -> Any:
    result = op.handler(context)
    if inspect.isawaitable(result):
        result = await result
    return result


__all__ = ["operation", "OperationContext", "Operation", "registered", "find", "invoke", "query_parameters",
           "app_state", "Response"]
