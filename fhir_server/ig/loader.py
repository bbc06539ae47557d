"""Loads the committed IG (``profiles/*.json``) once: the conformance resources the server serves and
the validator compiles, and the examples."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fhir_server.formats.json import loads
from fhir_server.ig.canonical import IG_DIR

CONFORMANCE_TYPES = (
    "ImplementationGuide",
    "StructureDefinition",
    "CodeSystem",
    "ValueSet",
    "ConceptMap",
    "SearchParameter",
)


def _read(path: Path) -> dict:
    return loads(path.read_bytes())


@lru_cache(maxsize=4)
def ig_resources(ig_dir: Path = IG_DIR) -> tuple[dict, ...]:
    """Every conformance resource of the IG, in file-name order."""
    resources = []
    for path in sorted(ig_dir.glob("*-*.json")):
        resource = _read(path)
        if resource.get("resourceType") in CONFORMANCE_TYPES:
            resources.append(resource)
    return tuple(resources)


def resources_of_type(resource_type: str, ig_dir: Path = IG_DIR) -> list[dict]:
    return [r for r in ig_resources(ig_dir) if r["resourceType"] == resource_type]


def conformance_resources():
    """The IG's conformance resources, for the app's CONFORMANCE_SOURCES (served read-only)."""
    return list(ig_resources())


def example_paths(ig_dir: Path = IG_DIR, invalid: bool = False) -> list[Path]:
    folder = ig_dir / "examples" / ("invalid" if invalid else "")
    return sorted(folder.glob("*.json"))


def examples(ig_dir: Path = IG_DIR, invalid: bool = False) -> list[dict]:
    return [_read(p) for p in example_paths(ig_dir, invalid)]
