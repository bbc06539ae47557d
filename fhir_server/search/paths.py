"""Compile the FHIRPath shapes search parameters use into plain dict walkers.

Writes must be fast, so the expressions are compiled once: paths with choice types,
``|`` unions, ``.where(field='literal')``, ``.where(resolve() is Type)``, ``as Type`` /
``.as(Type)`` / ``.ofType(Type)``, ``.extension('url')`` and ``.exists()``. Anything else
falls back to fhirpathpy, evaluated per write (rare: a handful of R4 parameters).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Callable

from .registry import split_top_level, split_union

Walker = Callable[[dict], list]

#: FHIR data type names used as choice-type suffixes (``valueQuantity``, ``effectivePeriod``)
TYPE_SUFFIXES = frozenset(
    "Base64Binary Boolean Canonical Code Date DateTime Decimal Id Instant Integer Markdown Oid PositiveInt String "
    "Time UnsignedInt Uri Url Uuid Address Age Annotation Attachment CodeableConcept Coding ContactPoint Count "
    "Distance Duration HumanName Identifier Money Period Quantity Range Ratio Reference SampledData Signature "
    "Timing ContactDetail Contributor DataRequirement Expression ParameterDefinition RelatedArtifact "
    "TriggerDefinition UsageContext Dosage Meta".split()
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_AS_CALL = re.compile(r"^(?:as|ofType)\(\s*([A-Za-z]+)\s*\)$")
_WHERE_EQ = re.compile(r"^where\(\s*([A-Za-z_]+)\s*=\s*'([^']*)'\s*\)$")
_WHERE_RESOLVE = re.compile(r"^where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)$")
_EXTENSION = re.compile(r"^extension\(\s*'([^']*)'\s*\)$")
_EXISTS_NOT_FALSE = re.compile(r"^(\S+)\.exists\(\) and \1 != false$")
_AS_SUFFIX = re.compile(r"^(.*?)\s+as\s+([A-Za-z]+)$")


class Unsupported(ValueError):
    """The expression needs the full FHIRPath engine."""


def _steps(path: str) -> list[str]:
    return [s.strip() for s in split_top_level(path, ".")]


def _flatten(value, out: list) -> None:
    if isinstance(value, list):
        out.extend(value)  # FHIR JSON arrays hold no nulls
    elif value is not None:
        out.append(value)


def _choice_names() -> frozenset[str]:
    data = resources.files("fhir_server.search").joinpath("data", "choices.json").read_text("utf-8")
    return frozenset(json.loads(data))


#: element names that are choice types somewhere (``value`` for ``value[x]``)
CHOICE_NAMES = _choice_names()


def _child(name: str):
    if name not in CHOICE_NAMES:
        def plain(nodes: list) -> list:
            out: list = []
            for node in nodes:
                if isinstance(node, dict):
                    value = node.get(name)
                    if value is not None:
                        _flatten(value, out)
            return out

        return plain

    def step(nodes: list) -> list:
        out: list = []
        for node in nodes:
            if isinstance(node, dict):
                value = node.get(name)
                if value is not None:
                    _flatten(value, out)
                else:
                    n = len(name)
                    for key, value in node.items():
                        if key.startswith(name) and key[n:] in TYPE_SUFFIXES:
                            _flatten(value, out)
        return out

    return step


def _choice(name: str, type_name: str):
    key = name + type_name[0].upper() + type_name[1:]

    def step(nodes: list) -> list:
        out: list = []
        for node in nodes:
            if isinstance(node, dict):
                _flatten(node.get(key), out)
        return out

    return step


def _where_eq(field: str, literal: str):
    def step(nodes: list) -> list:
        return [n for n in nodes if isinstance(n, dict) and n.get(field) == literal]

    return step


def reference_type(reference: str) -> str | None:
    """The resource type a literal reference points at (relative or absolute URL)."""
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2]
    return None


def _where_resolve(type_name: str):
    def step(nodes: list) -> list:
        return [n for n in nodes if isinstance(n, dict) and isinstance(n.get("reference"), str)
                and reference_type(n["reference"]) == type_name]

    return step


def _extension(url: str):
    def step(nodes: list) -> list:
        out = []
        for node in nodes:
            if isinstance(node, dict):
                out.extend(e for e in node.get("extension", ()) if isinstance(e, dict) and e.get("url") == url)
        return out

    return step


def _exists(nodes: list) -> list:
    return [bool(nodes)]


def _part_steps(part: str) -> tuple[list[str], str | None]:
    """The steps of one union member and the type of a trailing ``as Type`` cast (None without one)."""
    match = _AS_SUFFIX.match(part)
    if match:
        return _steps(_strip(match.group(1))), match.group(2)
    return _steps(part), None


def _compile_part(part: str, root: str) -> Callable[[dict], list]:
    steps, cast = _part_steps(part)
    if not steps or steps[0] not in (root, "Resource", "DomainResource"):
        raise Unsupported(part)
    ops = []
    names = steps[1:]
    for i, step in enumerate(names):
        if _NAME.match(step):
            nxt = names[i + 1] if i + 1 < len(names) else None
            as_match = _AS_CALL.match(nxt) if nxt else None
            if as_match or (cast and nxt is None):
                ops.append(_choice(step, as_match.group(1) if as_match else cast))
                if cast and nxt is None:
                    cast = None
            else:
                ops.append(_child(step))
        elif _AS_CALL.match(step):
            if not (i and _NAME.match(names[i - 1])):
                raise Unsupported(part)
        elif m := _WHERE_EQ.match(step):
            ops.append(_where_eq(m.group(1), m.group(2)))
        elif m := _WHERE_RESOLVE.match(step):
            ops.append(_where_resolve(m.group(1)))
        elif m := _EXTENSION.match(step):
            ops.append(_extension(m.group(1)))
        elif step == "exists()" and i == len(names) - 1:
            ops.append(_exists)
        else:
            raise Unsupported(part)
    if cast:
        raise Unsupported(part)

    def walk(resource: dict) -> list:
        nodes = [resource]
        for op in ops:
            nodes = op(nodes)
            if not nodes:
                break
        return nodes

    return walk


def _strip(text: str) -> str:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        return text[1:-1].strip()
    return text


def _fhirpath(expression: str) -> Walker:
    import fhirpathpy
    from fhirpathpy.models import models

    compiled = fhirpathpy.compile(expression, models["r4"])

    def walk(resource: dict) -> list:
        try:
            result = compiled(resource)
        except Exception:  # noqa: BLE001 - an unevaluable expression indexes nothing rather than failing the write
            return []
        return [r for r in result if r is not None]

    return walk


def compile_expression(expression: str, root: str) -> Walker:
    """A function resource → list of values (dicts or primitives) for ``expression``."""
    if not expression:
        return lambda resource: []
    if m := _EXISTS_NOT_FALSE.match(expression):
        inner = _compile_part(m.group(1), root)
        return lambda resource: [any(v is not False for v in inner(resource))]
    try:
        parts = [_compile_part(p, root) for p in split_union(expression)]
    except Unsupported:
        return _fhirpath(expression)
    if len(parts) == 1:
        return parts[0]

    def walk_all(resource: dict) -> list:
        out: list = []
        for part in parts:
            out.extend(part(resource))
        return out

    return walk_all


def first_elements(expression: str, root: str, choices: dict[str, list[str]] | None = None) -> tuple[str, ...] | None:
    """The top-level elements a resource must have for ``expression`` to find anything there (None: cannot
    tell, e.g. an expression left to fhirpathpy). ``choices``: the type's own choice elements and their JSON
    names (``occurrence`` → ``occurrenceDateTime``, …); without it a name that is a choice in any type is
    not decided. A write skips the walk of a parameter whose elements the resource lacks: most of a type's
    parameters, in a typical resource."""
    if not expression or _EXISTS_NOT_FALSE.match(expression):
        return None
    names: list[str] = []
    for part in split_union(expression):
        steps, _ = _part_steps(part)
        if len(steps) < 2 or steps[0] not in (root, "Resource", "DomainResource"):
            return None
        first = steps[1]
        if _EXTENSION.match(first):
            first = "extension"
        if not _NAME.match(first):
            return None
        if choices is not None and first in choices:
            names.extend(n for n in (first, *choices[first]) if n not in names)  # the walk tries both
            continue
        if first in CHOICE_NAMES and choices is None:
            return None
        if first not in names:
            names.append(first)
    return tuple(names)


def compile_relative(expression: str) -> Walker:
    """Walker for a composite component's expression, evaluated on an element (no root type)."""
    parts = [p for p in split_union(expression) if not p.startswith("%")]
    if not parts:
        return lambda node: []
    return compile_expression(" | ".join(f"Self.{p}" for p in parts), "Self")
