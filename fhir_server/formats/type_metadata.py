"""Element metadata per FHIR type, derived once from the fhir.resources R4B models.

The XML <-> JSON conversion needs, for each element of a type: its name, whether it
repeats (JSON array), whether it is a primitive (and which JSON type carries its value:
number, integer, boolean or string), a complex type (and which one), a nested resource
(``contained``, ``Bundle.entry.resource``...) or the narrative XHTML, and the element
order of the StructureDefinition (XML output must follow it). The pydantic models already
carry all of this: ``elements_sequence()`` gives the definition order with choice types
expanded (``valueQuantity``...), field annotations give list-ness and types, and
``json_schema_extra['one_of_many']`` names the choice group. Reading it from the models
keeps one source of truth with structural validation; the result is cached per model
class, and models are imported only when a type is first met.

This module knows nothing about XML; it must not touch resources themselves.
"""

from __future__ import annotations

import importlib
import types
import typing
from dataclasses import dataclass, field
from functools import lru_cache

from fhir_server.resource_types import RESOURCE_TYPES, model_class

PRIMITIVE = "primitive"
COMPLEX = "complex"
RESOURCE = "resource"
XHTML = "xhtml"

# JSON carrier of a primitive's value (FHIR JSON representation, "primitive types").
BOOLEAN = "boolean"
INTEGER = "integer"
DECIMAL = "decimal"
STRING = "string"

_INTEGER_MARKERS = frozenset({"Integer", "PositiveInt", "UnsignedInt"})
_NONE = type(None)


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """One element of a type, as the JSON and XML representations name it."""

    name: str
    repeats: bool
    kind: str  # PRIMITIVE, COMPLEX, RESOURCE or XHTML
    json_type: str | None = None  # for PRIMITIVE: BOOLEAN, INTEGER, DECIMAL or STRING
    type_class: type | None = None  # for COMPLEX: the model class of the element's type
    choice_group: str | None = None  # for value[x]-style elements: "value"
    position: int = 0  # index in the definition order

    @property
    def type_info(self) -> "TypeInfo":
        return type_info(self.type_class)


@dataclass(slots=True)
class TypeInfo:
    """A resource, datatype or backbone element: its elements in definition order."""

    name: str
    is_resource: bool
    elements: dict[str, ElementInfo] = field(default_factory=dict)
    # Elements written as XML attributes: Element.id on datatypes/backbone elements, Extension.url.
    attributes: frozenset[str] = frozenset()


def _unwrap_optional(annotation):
    args = [a for a in typing.get_args(annotation) if a is not _NONE]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        return args[0]
    if isinstance(annotation, types.UnionType) and len(args) == 1:  # X | None
        return args[0]
    return annotation


def _model_of(marker: type) -> type:
    """The model class an ``abc.<Name>Type`` marker stands for."""
    module_name, _, class_name = marker._model_klass.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def _element_info(name: str, annotation, extra: dict, position: int) -> ElementInfo:
    info = _describe(name, annotation, extra)
    return ElementInfo(info.name, info.repeats, info.kind, info.json_type, info.type_class, info.choice_group, position)


def _describe(name: str, annotation, extra: dict) -> ElementInfo:
    inner = _unwrap_optional(annotation)
    repeats = typing.get_origin(inner) in (list, typing.List)
    if repeats:
        inner = _unwrap_optional(typing.get_args(inner)[0])
    group = extra.get("one_of_many")
    if typing.get_origin(inner) is typing.Annotated:
        base, *markers = typing.get_args(inner)
        marker_names = {type(m).__name__ for m in markers}
        if "Xhtml" in marker_names:
            return ElementInfo(name, repeats, XHTML, choice_group=group)
        if "Decimal" in marker_names:
            json_type = DECIMAL
        elif marker_names & _INTEGER_MARKERS:
            json_type = INTEGER
        else:
            json_type = STRING
        return ElementInfo(name, repeats, PRIMITIVE, json_type, choice_group=group)
    if inner is bool:
        return ElementInfo(name, repeats, PRIMITIVE, BOOLEAN, choice_group=group)
    if hasattr(inner, "_model_klass"):
        if inner.__name__ == "ResourceType":
            return ElementInfo(name, repeats, RESOURCE, choice_group=group)
        return ElementInfo(name, repeats, COMPLEX, type_class=_model_of(inner), choice_group=group)
    if inner is str:
        return ElementInfo(name, repeats, PRIMITIVE, STRING, choice_group=group)
    raise TypeError(f"unsupported annotation for {name}: {annotation!r}")


@lru_cache(maxsize=None)
def type_info(cls: type) -> TypeInfo:
    """Metadata for one model class (a resource, datatype or backbone element)."""
    from fhir.resources.R4B.resource import Resource

    by_alias = {f.alias or n: f for n, f in cls.model_fields.items()}
    is_resource = issubclass(cls, Resource)
    info = TypeInfo(name=cls.__resource_type__, is_resource=is_resource)
    for position, name in enumerate(cls.elements_sequence()):
        f = by_alias[name]
        info.elements[name] = _element_info(name, f.annotation, f.json_schema_extra or {}, position)
    attributes = set()
    if not is_resource and "id" in info.elements:
        attributes.add("id")
    if info.name == "Extension":
        attributes.add("url")
    info.attributes = frozenset(attributes)
    return info


def resource_info(resource_type: str) -> TypeInfo | None:
    """Metadata for a resource type this server knows, or None."""
    if resource_type not in RESOURCE_TYPES:
        return None
    return type_info(model_class(resource_type))
