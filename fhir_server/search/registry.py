"""The search-parameter registry: R4 definitions for the served types plus the IG's own.

Search parameters are data: ``data/search-parameters.json`` is generated from the official
hl7.fhir.r4.core package (``scripts/generate_search_data.py``) and the IG's
``profiles/**/SearchParameter-*.json`` are loaded beside it. One registry drives index
extraction, query parsing and the CapabilityStatement. It holds no per-request state.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable

from fhir_server.resource_types import RESOURCE_TYPES

#: the base every resource type inherits parameters from (``_id``, ``_lastUpdated``, ``_tag`` …)
COMMON = "Resource"
_COMMON_BASES = ("Resource", "DomainResource")
DEFAULT_PROFILES = Path(__file__).resolve().parents[2] / "profiles"
SEARCH_TYPES = ("number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special")


def param_key(owner: str, code: str) -> int:
    """A stable 63-bit key for one parameter of one type (index rows carry it instead of text)."""
    return int.from_bytes(hashlib.blake2b(f"{owner}.{code}".encode(), digest_size=8).digest(), "big") >> 1


@dataclass(frozen=True, slots=True)
class Component:
    definition: str
    expression: str


@dataclass(eq=False, slots=True)
class SearchParam:
    code: str
    type: str
    #: the resource type the parameter is indexed under (``Resource`` for the common ones)
    owner: str
    url: str
    #: the FHIRPath expression, reduced to the part for ``owner``
    expression: str
    targets: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    description: str = ""
    key: int = 0
    #: compiled extractor, attached by fhir_server.search.extract on first use
    extractor: object = field(default=None, repr=False)

    def component_key(self, index: int) -> int:
        return param_key(self.owner, f"{self.code}#{index}")

    def sub_key(self, suffix: str) -> int:
        """Key of a derived index (``identifier:of-type``, ``subject:identifier``)."""
        return param_key(self.owner, f"{self.code}:{suffix}")


def split_top_level(expression: str, separator: str) -> list[str]:
    """``expression`` split at ``separator`` outside parentheses and string literals."""
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(expression):
        if ch == "'" and (i == 0 or expression[i - 1] != "\\"):
            quote = not quote
        elif quote:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == separator and depth == 0:
            parts.append(expression[start:i])
            start = i + 1
    parts.append(expression[start:])
    return parts


def split_union(expression: str) -> list[str]:
    """Top-level ``|`` alternatives of a FHIRPath expression, outer parentheses removed."""
    return [_strip_parens(p.strip()) for p in split_top_level(expression, "|") if p.strip()]


def _strip_parens(text: str) -> str:
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def _root(part: str) -> str:
    head = part.split(".", 1)[0].split(" ", 1)[0]
    return head


def expression_for(expression: str, owner: str) -> str:
    """The alternatives of a shared expression that apply to ``owner``."""
    if not expression:
        return ""
    parts = split_union(expression)
    if owner == COMMON:
        return " | ".join(parts)
    mine = [p for p in parts if _root(p) == owner]
    return " | ".join(f"({p})" if " " in p and len(mine) > 1 else p for p in mine)


class Registry:
    """All search parameters by owner type and code, and by canonical URL."""

    def __init__(self, definitions: Iterable[dict], compartments: dict, elements: dict):
        self.by_type: dict[str, dict[str, SearchParam]] = {}
        self.by_url: dict[str, dict] = {}
        self.definitions: list[dict] = []
        self.compartments = compartments
        self.elements = elements
        for definition in definitions:
            self.add(definition)

    def add(self, definition: dict) -> None:
        url = definition.get("url")
        if url in self.by_url:
            return
        self.by_url[url] = definition
        self.definitions.append(definition)
        for base in definition.get("base", []):
            owner = COMMON if base in _COMMON_BASES else base
            if owner != COMMON and owner not in RESOURCE_TYPES:
                continue
            param = SearchParam(
                code=definition["code"],
                type=definition["type"],
                owner=owner,
                url=url,
                expression=expression_for(definition.get("expression", ""), owner),
                targets=tuple(definition.get("target", ())),
                modifiers=tuple(definition.get("modifier", ())),
                comparators=tuple(definition.get("comparator", ())),
                components=tuple(Component(c["definition"], c["expression"]) for c in definition.get("component", ())),
                description=definition.get("description", ""),
                key=param_key(owner, definition["code"]),
            )
            self.by_type.setdefault(owner, {})[param.code] = param

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        own = self.by_type.get(resource_type, {}).get(code)
        return own if own is not None else self.by_type[COMMON].get(code)

    def params(self, resource_type: str) -> list[SearchParam]:
        """Every parameter that applies to a type: its own, then the common ones."""
        own = self.by_type.get(resource_type, {})
        return list(own.values()) + [p for c, p in self.by_type[COMMON].items() if c not in own]

    def own_params(self, resource_type: str) -> list[SearchParam]:
        return list(self.by_type.get(resource_type, {}).values())

    def component_param(self, url: str, owner: str) -> SearchParam | None:
        definition = self.by_url.get(url)
        if definition is None:
            return None
        return self.get(owner, definition["code"])


def _load_json(name: str):
    return json.loads(resources.files("fhir_server.search").joinpath("data", name).read_text("utf-8"))


def _profile_params(profiles_dir: Path) -> list[dict]:
    found = []
    if profiles_dir.is_dir():
        for path in sorted(profiles_dir.rglob("SearchParameter-*.json")):
            try:
                doc = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError):
                continue
            if doc.get("resourceType") == "SearchParameter" and doc.get("code") and doc.get("type") in SEARCH_TYPES:
                found.append(doc)
    return found


def load(profiles_dir: Path | None = DEFAULT_PROFILES) -> Registry:
    """Build a registry from the generated R4 data and the IG's SearchParameters (IG first wins ties)."""
    ig = _profile_params(profiles_dir) if profiles_dir else []
    registry = Registry([], _load_json("compartments.json"), _load_json("elements.json"))
    r4 = _load_json("search-parameters.json")
    for definition in r4:
        registry.add(definition)
    for definition in ig:
        registry.add(definition)
    registry.ig_definitions = ig
    return registry


@lru_cache(maxsize=None)
def default_registry() -> Registry:
    """The registry for this installation, loaded once (read-only afterwards)."""
    return load()


def capability_search_params(resource_type: str) -> list[dict]:
    """CapabilityStatement.rest.resource.searchParam entries for one type."""
    registry = default_registry()
    return [
        {"name": p.code, "definition": p.url, "type": p.type, "documentation": p.description}
        for p in registry.params(resource_type)
        if p.type != "special"
    ]


def conformance_resources() -> Iterable[dict]:
    """SearchParameter resources for ``GET /SearchParameter``: R4 ones for the served types, then the IG's."""
    registry = default_registry()
    for definition in registry.definitions:
        if "resourceType" in definition:
            yield definition
            continue
        resource = {
            "resourceType": "SearchParameter",
            "id": definition["url"].rsplit("/", 1)[-1],
            "url": definition["url"],
            "version": "4.0.1",
            "name": definition.get("name", definition["code"]),
            "status": "active",
            "description": definition.get("description", ""),
        }
        for key in ("code", "base", "type", "expression", "target", "multipleOr", "multipleAnd",
                    "comparator", "modifier", "component"):
            if key in definition:
                resource[key] = definition[key]
        yield resource
