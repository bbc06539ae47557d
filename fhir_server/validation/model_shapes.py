"""A fast structural check that only ever agrees with the fhir.resources models.

Validating a resource with its pydantic model costs a few hundred microseconds, most of it in
Python-level validators run for every nested element. This module walks the resource once
against *shapes* read off the same models (element names, list or single, complex type,
required elements, choice groups) and checks primitive values with pydantic adapters built
from the models' own field annotations, remembering values already accepted.

It answers only "certainly valid" or "not sure": anything unusual (a null, an empty list or
object, an element given by its Python name, a primitive carried only by its ``_x`` extension,
a missing required element, a second choice of one ``[x]`` group, an unknown key or type) is
"not sure", and the caller then runs the model, whose verdict and error paths are final.
So the models stay the single source of truth: ``conforms(r)`` implies that the model
accepts ``r`` (tests/validation/test_model_shapes.py checks this on the spec examples and on
random mutations of them), and it is true for the ordinary resources clients send.
"""

from __future__ import annotations

import threading
import types
import typing
from dataclasses import dataclass, field

from fhir_core.types import FhirBase, FhirElementOrResourceBase
from pydantic import TypeAdapter, ValidationError

from ..resource_types import RESOURCE_TYPES, model_class

_PRIMITIVE, _COMPLEX, _RESOURCE = 0, 1, 2
_SCALARS = (str, bool, int)
_MEMO_LIMIT = 200_000  # accepted (check, value) pairs kept; the memo is cleared when it grows past this


@dataclass
class _Element:
    kind: int
    many: bool
    check: TypeAdapter | None = None  # primitives: the field's own annotation
    target: type | None = None  # complex elements: the model class


@dataclass
class _Shape:
    elements: dict[str, _Element] = field(default_factory=dict)
    required: tuple[str, ...] = ()  # JSON names that must be present with a value
    choices: tuple[tuple[tuple[str, ...], bool], ...] = ()  # ([JSON names], one required?)
    needs_any: tuple[str, ...] = ()  # FHIRPrimitiveExtension: at least one of these


_shapes: dict[type, _Shape | None] = {}
_shapes_lock = threading.Lock()
_memo: set = set()


def _unwrap(annotation) -> tuple[typing.Any, bool]:
    """The element type of an annotation and whether it is a list (``Optional`` removed)."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, many
            annotation = args[0]
        elif origin is list:
            if many:
                return None, many  # a list of lists: not a FHIR shape
            many = True
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation, many


def _element(annotation) -> _Element | None:
    inner, many = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, FhirBase):
        if issubclass(inner, FhirElementOrResourceBase):
            if inner.get_model_klass().__name__ != "Resource":
                return None  # an Element-typed slot: rare, left to the model
            return _Element(_RESOURCE, many)
        return _Element(_COMPLEX, many, target=inner.get_model_klass())
    if inner is None or typing.get_origin(inner) is typing.Union:
        return None
    try:
        return _Element(_PRIMITIVE, many, check=TypeAdapter(annotation))
    except Exception:  # noqa: BLE001 - an annotation pydantic cannot adapt alone: leave to the model
        return None


def _build(model: type) -> _Shape | None:
    shape = _Shape()
    aliases = {name: info.alias or name for name, info in model.model_fields.items()}
    for name, info in model.model_fields.items():
        if name == "fhir_comments":
            continue
        element = _element(info.annotation)
        if element is None:
            return None
        shape.elements[aliases[name]] = element
        if info.is_required():
            shape.required += (aliases[name],)
    probe = model.model_construct()
    shape.required += tuple(aliases.get(name, name) for name, _ in probe.get_required_fields())
    for names in probe.get_one_of_many_fields().values():
        extra = model.model_fields[names[0]].json_schema_extra or {}
        shape.choices += ((tuple(aliases[n] for n in names), extra.get("one_of_many_required") is True),)
    if model.__name__ == "FHIRPrimitiveExtension":
        shape.needs_any = ("id", "extension")
    return shape


def _shape(model: type) -> _Shape | None:
    try:
        return _shapes[model]
    except KeyError:
        pass
    with _shapes_lock:
        if model not in _shapes:
            _shapes[model] = _build(model)
    return _shapes[model]


def _primitive(check: TypeAdapter, value) -> bool:
    if value is None or type(value) is dict or type(value) is list:
        return False
    hashable = type(value) in _SCALARS
    if hashable and (id(check), type(value), value) in _memo:
        return True
    try:
        check.validate_python(value)
    except (ValidationError, ValueError, TypeError):
        return False
    if hashable:
        if len(_memo) > _MEMO_LIMIT:
            _memo.clear()
        _memo.add((id(check), type(value), value))
    return True


def _resource(value) -> bool:
    if type(value) is not dict:
        return False
    resource_type = value.get("resourceType")
    if type(resource_type) is not str or resource_type not in RESOURCE_TYPES:
        return False
    return _object(model_class(resource_type), value, True)


def _primitives(check: TypeAdapter, items: list) -> bool:
    if any(one is None or type(one) is dict or type(one) is list for one in items):
        return False
    try:
        check.validate_python(items)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


def _object(model: type, value, is_resource: bool = False) -> bool:
    if type(value) is not dict or not value:
        return False
    shape = _shape(model)
    if shape is None:
        return False
    elements = shape.elements
    for key, item in value.items():
        element = elements.get(key)
        if element is None:
            if key == "resourceType" and is_resource:
                continue
            return False
        kind = element.kind
        if element.many:
            if type(item) is not list or not item:
                return False
            if kind == _PRIMITIVE:
                if not _primitives(element.check, item):
                    return False
            elif kind == _COMPLEX:
                target = element.target
                if not all(_object(target, one) for one in item):
                    return False
            elif not all(_resource(one) for one in item):
                return False
        elif kind == _PRIMITIVE:
            if not _primitive(element.check, item):
                return False
        elif kind == _COMPLEX:
            if not _object(element.target, item):
                return False
        elif not _resource(item):
            return False
    for key in shape.required:
        if key not in value:
            return False
    for names, required in shape.choices:
        present = 0
        for name in names:
            if name in value:
                present += 1
        if present > 1 or (required and present == 0):
            return False
    if shape.needs_any and not any(key in value for key in shape.needs_any):
        return False
    return True


def conforms(resource: dict) -> bool:
    """True only when the resource's model would certainly accept it (see the module docstring)."""
    try:
        return _resource(resource)
    except RecursionError:
        return False
