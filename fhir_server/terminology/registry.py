"""Code systems, value sets and concept maps the server knows, with expansion computed once per value set.

Sources: the IG's CodeSystems/ValueSets/ConceptMaps and the pre-computed expansions of the base R4
value sets that IG profiles bind with strength required (``core_value_sets.json``, written by the IG
generator from the official core package). A value set that includes a code system the server does not
hold (SNOMED CT, LOINC, ...) is *open* for that system: codes from it are neither accepted nor rejected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

CORE_VALUE_SETS_FILE = Path(__file__).with_name("core_value_sets.json")


@dataclass
class Expansion:
    url: str
    #: (system, code) → display
    concepts: dict[tuple[str, str], str] = field(default_factory=dict)
    #: systems included by the value set whose codes cannot be enumerated here
    open_systems: set[str] = field(default_factory=set)
    #: code → systems, for ``code``-typed elements that carry no system
    by_code: dict[str, set[str]] = field(default_factory=dict)

    def add(self, system: str, code: str, display: str) -> None:
        self.concepts.setdefault((system, code), display)
        self.by_code.setdefault(code, set()).add(system)

    def contains(self, system: str | None, code: str) -> bool | None:
        """True/False when decidable; None when the code's system is one the server cannot enumerate."""
        if system is None:
            return code in self.by_code or (None if self.open_systems else False)
        if (system, code) in self.concepts:
            return True
        return None if system in self.open_systems else False


def _flatten(concepts: list[dict]):
    for concept in concepts:
        yield concept
        yield from _flatten(concept.get("concept", []))


class Terminology:
    def __init__(self, code_systems=(), value_sets=(), concept_maps=(), core_expansions: dict | None = None):
        self.code_systems = {cs["url"]: cs for cs in code_systems}
        self.value_sets = {vs["url"]: vs for vs in value_sets}
        self.concept_maps = {cm["url"]: cm for cm in concept_maps}
        self.core_expansions = core_expansions or {}
        self._expansions: dict[str, Expansion | None] = {}
        self._concepts: dict[str, dict[str, dict]] = {}

    # -- code systems ----------------------------------------------------------------------------
    def concepts(self, system: str) -> dict[str, dict] | None:
        if system not in self._concepts:
            cs = self.code_systems.get(system)
            self._concepts[system] = None if cs is None else {c["code"]: c for c in _flatten(cs.get("concept", []))}
        return self._concepts[system]

    def lookup(self, system: str, code: str) -> dict | None:
        """The concept (code, display, designations, definition) or None when unknown."""
        concepts = self.concepts(system)
        if concepts is not None:
            return concepts.get(code)
        for rows in self.core_expansions.values():
            for row_system, row_code, display in rows:
                if row_system == system and row_code == code:
                    return {"code": code, "display": display}
        return None

    # -- value sets ------------------------------------------------------------------------------
    def expansion(self, url: str) -> Expansion | None:
        url = url.split("|", 1)[0]
        if url not in self._expansions:
            self._expansions[url] = None  # guards against include cycles
            self._expansions[url] = self._expand(url)
        return self._expansions[url]

    def _expand(self, url: str) -> Expansion | None:
        if url in self.core_expansions:
            expansion = Expansion(url)
            for system, code, display in self.core_expansions[url]:
                expansion.add(system, code, display)
            return expansion
        vs = self.value_sets.get(url)
        if vs is None:
            return None
        return self.expand_resource(vs)

    def expand_resource(self, vs: dict) -> Expansion:
        """Expansion of a ValueSet resource (one of the IG's, a stored one, or one posted to $expand)."""
        expansion = Expansion(vs.get("url", ""))
        compose = vs.get("compose", {})
        for include in compose.get("include", []):
            self._include(expansion, include)
        for exclude in compose.get("exclude", []):
            for concept in exclude.get("concept", []):
                key = (exclude.get("system"), concept["code"])
                if key in expansion.concepts:
                    del expansion.concepts[key]
                    expansion.by_code.get(concept["code"], set()).discard(key[0])
        return expansion

    def _include(self, expansion: Expansion, include: dict) -> None:
        for imported in include.get("valueSet", []):
            sub = self.expansion(imported)
            if sub is None:
                continue
            for (system, code), display in sub.concepts.items():
                expansion.add(system, code, display)
            expansion.open_systems |= sub.open_systems
        system = include.get("system")
        if not system:
            return
        concepts = self.concepts(system)
        if include.get("concept"):
            for concept in include["concept"]:
                display = concept.get("display") or ((concepts or {}).get(concept["code"]) or {}).get("display", "")
                expansion.add(system, concept["code"], display)
        elif concepts is not None and not include.get("filter"):
            for code, concept in concepts.items():
                expansion.add(system, code, concept.get("display", ""))
        else:
            expansion.open_systems.add(system)

    # -- concept maps ----------------------------------------------------------------------------
    def translate(self, system: str, code: str, concept_map_url: str | None = None, target_system: str | None = None) -> list[dict]:
        """Matches as dicts: equivalence, system, code, display, source (the ConceptMap url)."""
        maps = [self.concept_maps[concept_map_url]] if concept_map_url in self.concept_maps else (
            [] if concept_map_url else list(self.concept_maps.values())
        )
        matches = []
        for cm in maps:
            for group in cm.get("group", []):
                if group.get("source") != system or (target_system and group.get("target") != target_system):
                    continue
                for element in group.get("element", []):
                    if element.get("code") != code:
                        continue
                    for target in element.get("target", []):
                        matches.append(
                            {
                                "equivalence": target.get("equivalence", "equivalent"),
                                "system": group.get("target"),
                                "code": target.get("code"),
                                "display": target.get("display"),
                                "source": cm["url"],
                            }
                        )
        return matches


def load_core_expansions() -> dict:
    if CORE_VALUE_SETS_FILE.exists():
        return json.loads(CORE_VALUE_SETS_FILE.read_text(encoding="utf-8"))
    return {}


@lru_cache(maxsize=1)
def ig_terminology() -> Terminology:
    """The terminology of the committed IG plus the base value sets its profiles need."""
    from fhir_server.ig.loader import resources_of_type

    return Terminology(
        resources_of_type("CodeSystem"),
        resources_of_type("ValueSet"),
        resources_of_type("ConceptMap"),
        load_core_expansions(),
    )
