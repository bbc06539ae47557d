"""ConceptMaps used by mapping specs: local code tables → FHIR codes, loaded from FHIR JSON.

Only the parts a translation needs are indexed: per ConceptMap, source code (optionally
qualified by source system) → (target system, target code, display). ``group.unmapped``
with mode ``provided`` passes unknown codes through; ``fixed`` supplies one code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fhir_server.formats.json import loads
from fhir_server.mapping.errors import SpecError


@dataclass(frozen=True)
class Target:
    system: str
    code: str
    display: str = ""


@dataclass
class ConceptMapIndex:
    id: str
    url: str
    resource: dict
    codes: dict[str, Target] = field(default_factory=dict)
    #: (source system, code) → target, for maps with several source systems
    qualified: dict[tuple[str, str], Target] = field(default_factory=dict)
    unmapped_mode: str = ""
    unmapped: Target | None = None
    target_system: str = ""

    def reverse(self, code: str) -> str | None:
        """The first source code that maps to ``code`` (FHIR → legacy, for outbound messages)."""
        inverse = self.__dict__.get("_inverse")
        if inverse is None:
            inverse = {}
            for source, target in self.codes.items():
                inverse.setdefault(target.code, source)
            self.__dict__["_inverse"] = inverse
        return inverse.get(code)

    def translate(self, code: str, system: str = "") -> Target | None:
        if system:
            hit = self.qualified.get((system, code))
            if hit:
                return hit
        hit = self.codes.get(code)
        if hit is None and self.codes and code.upper() != code:
            hit = self.codes.get(code.upper())
        if hit is not None:
            return hit
        if self.unmapped_mode == "provided":
            return Target(self.target_system, code)
        if self.unmapped_mode == "fixed" and self.unmapped:
            return self.unmapped
        return None


def index_conceptmap(resource: dict, origin: str) -> ConceptMapIndex:
    if resource.get("resourceType") != "ConceptMap":
        raise SpecError(f"{origin}: $.resourceType: expected ConceptMap")
    if not resource.get("id"):
        raise SpecError(f"{origin}: $.id: a ConceptMap used by mappings needs an id")
    index = ConceptMapIndex(resource["id"], resource.get("url", ""), resource)
    for g, group in enumerate(resource.get("group", [])):
        target_system = group.get("target", "")
        index.target_system = index.target_system or target_system
        for e, element in enumerate(group.get("element", [])):
            code = element.get("code")
            if not code:
                raise SpecError(f"{origin}: $.group[{g}].element[{e}].code: missing")
            for target in element.get("target", []):
                if target.get("equivalence") in ("unmatched", "disjoint") or not target.get("code"):
                    continue
                hit = Target(target_system, target["code"], target.get("display", ""))
                index.codes.setdefault(code, hit)
                if group.get("source"):
                    index.qualified.setdefault((group["source"], code), hit)
                break
        unmapped = group.get("unmapped")
        if unmapped:
            index.unmapped_mode = unmapped.get("mode", "")
            if unmapped.get("code"):
                index.unmapped = Target(target_system, unmapped["code"], unmapped.get("display", ""))
    return index


def load_conceptmaps(directory: Path, pattern: str = "*.json") -> dict[str, ConceptMapIndex]:
    """Every ConceptMap file in ``directory`` matching ``pattern``, by id and by url."""
    maps: dict[str, ConceptMapIndex] = {}
    for path in sorted(directory.glob(pattern)) if directory.is_dir() else []:
        try:
            resource = loads(path.read_bytes())
        except ValueError as exc:
            raise SpecError(f"{path}: not valid JSON: {exc}") from None
        index = index_conceptmap(resource, str(path))
        if index.id in maps:
            raise SpecError(f"{path}: $.id: ConceptMap id {index.id!r} is used twice")
        maps[index.id] = index
        if index.url:
            maps[index.url] = index
    return maps


def conformance_resources() -> list[dict]:
    """The mapping layer's ConceptMaps, for the app's CONFORMANCE_SOURCES (served read-only)."""
    from fhir_server.mapping.specs import DEFAULT_MAPPINGS_DIR

    seen, out = set(), []
    for index in load_conceptmaps(DEFAULT_MAPPINGS_DIR / "conceptmaps").values():
        if index.id not in seen:
            seen.add(index.id)
            out.append(index.resource)
    return out
