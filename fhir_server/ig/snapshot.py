"""Snapshot generation: the base StructureDefinition's snapshot with a profile's differential applied.

Rules followed (FHIR R4 "Profiling" and ElementDefinition):
- every differential element is matched to the snapshot element with the same ``id``; its properties
  replace the base ones, except ``constraint`` and ``mapping``, which are added to the inherited ones
  (constraints get ``source`` set to the profile's URL); the profile declares the base's mapping
  identities beside its own;
- a differential element that is not in the snapshot yet is created: a slice (``a.b:name``) is a copy
  of the sliced element placed after that element's children and any earlier slices; a child of an
  element whose type is a data type (``Patient.identifier:nid.system``) is reached by expanding the
  data type's own snapshot under that element (ids and paths rewritten, ``base`` kept);
- differential elements must be in snapshot order, as the specification requires; choice elements are
  constrained as ``value[x]`` (narrowing ``type``), not through type-named ids like ``valueQuantity``,
  and slices are not re-sliced — this IG needs neither.

The generator is deterministic, so a test can regenerate every committed snapshot and compare.
"""

from __future__ import annotations

import copy
import re
from typing import Callable

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"

#: root-element extensions of the base that describe the base (maturity, work group, status), not the profile
_BASE_ONLY_ROOT_EXTENSIONS = frozenset(
    CORE_SD + name
    for name in (
        "structuredefinition-fmm",
        "structuredefinition-fmm-no-warnings",
        "structuredefinition-hierarchy",
        "structuredefinition-interface",
        "structuredefinition-normative-version",
        "structuredefinition-applicable-version",
        "structuredefinition-category",
        "structuredefinition-codegen-super",
        "structuredefinition-security-category",
        "structuredefinition-standards-status",
        "structuredefinition-summary",
        "structuredefinition-wg",
        "replaces",
        "resource-approvalDate",
        "resource-effectivePeriod",
        "resource-lastReviewDate",
    )
)
#: markdown properties whose relative links point into the core specification
_MARKDOWN_KEYS = ("definition", "comment", "requirements", "meaningWhenMissing")
_RELATIVE_LINK = re.compile(r"\[([^\]]+)\]\((?!https?://)([^)]+)\)")


def _migrate(elements: list[dict], source_url: str) -> list[dict]:
    """Copies of a base definition's elements as they stand in a profile built on it.

    Text written for the core specification links relatively (``[x](extensibility.html)``); copied into
    another package those links would break, so they are made absolute. Inherited constraints record
    the definition they come from.
    """
    migrated = []
    core = source_url.startswith("http://hl7.org/fhir")
    for element in copy.deepcopy(elements):
        if core:
            for key in _MARKDOWN_KEYS:
                if isinstance(element.get(key), str):
                    element[key] = _RELATIVE_LINK.sub(r"[\1](http://hl7.org/fhir/\2)", element[key])
        for constraint in element.get("constraint", []):
            constraint.setdefault("source", source_url)
        migrated.append(element)
    return migrated


def element_path(element_id: str) -> str:
    """``Patient.identifier:nid.system`` → ``Patient.identifier.system``."""
    return ".".join(part.split(":", 1)[0] for part in _split(element_id))


def _split(element_id: str) -> list[str]:
    # slice names in this IG never contain '.', so a plain split is exact
    return element_id.split(".")


def _is_in_subtree(candidate: str, element_id: str) -> bool:
    """True for the element itself, its children and its slices (and their children)."""
    return (
        candidate == element_id
        or candidate.startswith(element_id + ".")
        or candidate.startswith(element_id + ":")
    )


class SnapshotError(ValueError):
    pass


class _Builder:
    def __init__(self, profile_url: str, base: dict, type_snapshot: Callable[[str], dict]):
        self.profile_url = profile_url
        self.type_snapshot = type_snapshot
        self.elements: list[dict] = _migrate(base["snapshot"]["element"], base["url"])
        root = self.elements[0]
        kept = [e for e in root.pop("extension", []) if e.get("url") not in _BASE_ONLY_ROOT_EXTENSIONS]
        if kept:
            root["extension"] = kept
        #: every element as inherited, before the differential changed it: what a new slice starts from
        self.inherited: dict[str, dict] = {e["id"]: copy.deepcopy(e) for e in self.elements}

    def index_of(self, element_id: str) -> int | None:
        for i, element in enumerate(self.elements):
            if element["id"] == element_id:
                return i
        return None

    def block_end(self, element_id: str, start: int) -> int:
        """Index just after the element at ``start`` with its children and slices."""
        end = start + 1
        while end < len(self.elements) and _is_in_subtree(self.elements[end]["id"], element_id):
            end += 1
        return end

    def ensure(self, element_id: str) -> int:
        found = self.index_of(element_id)
        if found is not None:
            return found
        parts = _split(element_id)
        if len(parts) < 2:
            raise SnapshotError(f"no root element {element_id}")
        last = parts[-1]
        parent_id = ".".join(parts[:-1])
        if ":" in last:
            name, _slice = last.split(":", 1)
            sliced_id = f"{parent_id}.{name}" if parent_id else name
            sliced_at = self.ensure(sliced_id)
            # slices of a slice (re-slicing) are not used by this IG
            insert_at = self.block_end(sliced_id, sliced_at)
            # a slice starts from the inherited definition, not from the constraints on the slicing entry
            sliced = copy.deepcopy(self.inherited[sliced_id])
            sliced.pop("slicing", None)
            sliced["id"] = element_id
            sliced["sliceName"] = _slice
            self.elements.insert(insert_at, sliced)
            return insert_at
        parent_at = self.ensure(parent_id)
        if parent_at + 1 < len(self.elements) and self.elements[parent_at + 1]["id"].startswith(parent_id + "."):
            raise SnapshotError(f"{element_id}: no such child of {parent_id}")
        self._expand(parent_at)
        found = self.index_of(element_id)
        if found is None:
            raise SnapshotError(f"{element_id}: no such element")
        return found

    def _expand(self, at: int) -> None:
        """Insert the children of the element at ``at``: from its unsliced twin, or from its data type."""
        parent = self.elements[at]
        parent_id, parent_path = parent["id"], parent["path"]
        children: list[dict] = []
        last = parent_id.rsplit(".", 1)[-1]
        if ":" in last:
            twin_id = parent_id[: len(parent_id) - len(last)] + last.split(":", 1)[0]
            twin_at = self.index_of(twin_id)
            for element in self.elements[twin_at + 1 :] if twin_at is not None else []:
                if not element["id"].startswith(twin_id + "."):
                    break
                child = copy.deepcopy(self.inherited.get(element["id"], element))
                child["id"] = parent_id + element["id"][len(twin_id) :]
                children.append(child)
        if not children:
            types = parent.get("type") or []
            codes = {t["code"] for t in types}
            if len(codes) != 1:
                raise SnapshotError(f"{parent_id}: cannot expand an element with types {sorted(codes)}")
            type_code = codes.pop()
            definition = self.type_snapshot(type_code)
            base_elements = _migrate(definition["snapshot"]["element"], definition["url"])
            root_path = base_elements[0]["path"]
            for element in base_elements[1:]:
                child = element
                child["id"] = parent_id + element["id"][len(root_path) :]
                child["path"] = parent_path + element["path"][len(root_path) :]
                children.append(child)
        for child in children:
            self.inherited.setdefault(child["id"], copy.deepcopy(child))
        self.elements[at + 1 : at + 1] = children

    def apply(self, diff: dict) -> None:
        element_id = diff["id"]
        if diff.get("path") != element_path(element_id):
            raise SnapshotError(f"{element_id}: path {diff.get('path')!r} does not match its id")
        at = self.ensure(element_id)
        target = self.elements[at]
        for key, value in diff.items():
            if key in ("id", "path"):
                continue
            if key == "constraint":
                merged = list(target.get("constraint", []))
                for constraint in value:
                    constraint = dict(constraint)
                    constraint.setdefault("source", self.profile_url)
                    merged.append(constraint)
                target["constraint"] = merged
            elif key == "mapping":
                target["mapping"] = list(target.get("mapping", [])) + copy.deepcopy(value)
            else:
                target[key] = copy.deepcopy(value)


def generate_snapshot(profile: dict, base: dict, type_snapshot: Callable[[str], dict]) -> dict:
    """The ``snapshot`` of ``profile`` (a StructureDefinition with a differential) over ``base``.

    ``type_snapshot(code)`` returns the base StructureDefinition of a data type, for expansion.
    """
    builder = _Builder(profile["url"], base, type_snapshot)
    for diff in profile["differential"]["element"]:
        builder.apply(diff)
    return {"element": builder.elements}


def with_snapshot(profile: dict, core) -> dict:
    """``profile`` with its snapshot generated against the core package ``core`` (a CorePackage)."""
    base = core.structure_definition(profile["baseDefinition"])
    result = dict(profile)
    result.pop("snapshot", None)
    identities = {m["identity"] for m in profile.get("mapping", [])}
    inherited = [m for m in base.get("mapping", []) if m["identity"] not in identities]
    if inherited or "mapping" in profile:
        result["mapping"] = copy.deepcopy(inherited) + list(profile.get("mapping", []))
    result["snapshot"] = generate_snapshot(profile, base, core.structure_definition)
    return result
