"""Generate ``profiles/`` from the IG source: conformance resources with snapshots, the ImplementationGuide,
and the expansions of the base R4 value sets the profiles bind with strength required.

Run ``fhir-server ig generate`` after editing the source; the committed JSON is what the server loads.
"""

from __future__ import annotations

import json
from pathlib import Path

from fhir_server.ig.canonical import CANONICAL, IG_DIR, IG_META, PACKAGE_ID, VERSION, url
from fhir_server.ig.core import CorePackage, core_package
from fhir_server.ig.snapshot import with_snapshot

#: where the base value-set expansions the validator needs are written (package data, not IG content)
CORE_VALUE_SETS_FILE = Path(__file__).resolve().parents[2] / "terminology" / "core_value_sets.json"


def dump(resource) -> str:
    return json.dumps(resource, ensure_ascii=False, indent=2) + "\n"


def file_name(resource: dict) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def source_resources() -> list[dict]:
    """The IG's conformance resources without snapshots, in a stable order."""
    from fhir_server.ig.authoring.extensions import EXTENSIONS
    from fhir_server.ig.authoring.profiles import PROFILES
    from fhir_server.ig.authoring.search_parameters import SEARCH_PARAMETERS
    from fhir_server.ig.authoring.terminology import CODE_SYSTEMS, CONCEPT_MAPS, VALUE_SETS

    return [*PROFILES, *EXTENSIONS, *CODE_SYSTEMS, *VALUE_SETS, *CONCEPT_MAPS, *SEARCH_PARAMETERS]


def example_files(ig_dir: Path = IG_DIR) -> list[Path]:
    """The valid examples (``profiles/examples/*.json``); invalid ones live in ``examples/invalid/``."""
    return sorted((ig_dir / "examples").glob("*.json"))


def implementation_guide(resources: list[dict], examples: list[dict]) -> dict:
    entries = [
        {
            "reference": {"reference": f"{r['resourceType']}/{r['id']}"},
            "name": r.get("title") or r.get("name") or r["id"],
            "exampleBoolean": False,
        }
        for r in resources
    ]
    for example in examples:
        entry = {"reference": {"reference": f"{example['resourceType']}/{example['id']}"}, "name": f"Example {example['id']}"}
        claimed = example.get("meta", {}).get("profile") or []
        if claimed:
            entry["exampleCanonical"] = claimed[0]
        else:
            entry["exampleBoolean"] = True
        entries.append(entry)
    return {
        "resourceType": "ImplementationGuide",
        "id": PACKAGE_ID,
        "url": url("ImplementationGuide", PACKAGE_ID),
        "version": VERSION,
        "name": IG_META["name"],
        "title": IG_META["title"],
        "status": "active",
        "date": IG_META["date"],
        "publisher": IG_META["publisher"],
        "description": IG_META["description"],
        "packageId": PACKAGE_ID,
        "license": IG_META["license"],
        "fhirVersion": [IG_META["fhirVersion"]],
        "dependsOn": [
            {"id": "hl7_fhir_r4_core", "uri": "http://hl7.org/fhir", "packageId": "hl7.fhir.r4.core", "version": "4.0.1"}
        ],
        "global": [
            {"type": r["type"], "profile": r["url"]}
            for r in resources
            if r["resourceType"] == "StructureDefinition" and r["type"] != "Extension" and r["type"] in _GLOBAL_TYPES
        ],
        "definition": {"resource": entries},
    }


#: types whose every instance on a referral platform should conform (global profiles of the IG)
_GLOBAL_TYPES = ("ServiceRequest", "Task")


def _flatten(concepts: list[dict], system: str) -> list[list[str]]:
    result: list[list[str]] = []
    for concept in concepts:
        result.append([system, concept["code"], concept.get("display", "")])
        result.extend(_flatten(concept.get("concept", []), system))
    return result


def expand_core_value_set(core: CorePackage, vs_url: str, seen: frozenset = frozenset()) -> list[list[str]] | None:
    """Expansion of a base value set as [system, code, display] rows; None when it cannot be enumerated."""
    vs = core.by_url(vs_url)
    if vs is None or vs_url in seen:
        return None
    rows: list[list[str]] = []
    for include in vs.get("compose", {}).get("include", []):
        if include.get("filter"):
            return None
        for imported in include.get("valueSet", []):
            sub = expand_core_value_set(core, imported.split("|", 1)[0], seen | {vs_url})
            if sub is None:
                return None
            rows.extend(sub)
        system = include.get("system")
        if not system:
            continue
        if include.get("concept"):
            rows.extend([system, c["code"], c.get("display", "")] for c in include["concept"])
            continue
        cs = core.by_url(system)
        if cs is None or cs.get("content") != "complete":
            return None
        rows.extend(_flatten(cs.get("concept", []), system))
    if vs.get("compose", {}).get("exclude"):
        return None
    return rows


def core_value_sets(profiles: list[dict], core: CorePackage) -> dict[str, list[list[str]]]:
    """Expansions of every non-IG value set bound with strength required in the profiles' snapshots."""
    urls = set()
    for sd in profiles:
        for element in sd["snapshot"]["element"]:
            bound = element.get("binding") or {}
            vs = bound.get("valueSet", "").split("|", 1)[0]
            if bound.get("strength") == "required" and vs and not vs.startswith(CANONICAL):
                urls.add(vs)
    result = {}
    for vs in sorted(urls):
        rows = expand_core_value_set(core, vs)
        if rows is not None:
            result[vs] = rows
    return result


def generate(ig_dir: Path = IG_DIR, core: CorePackage | None = None) -> dict[Path, str]:
    """Every generated file and its text (nothing written), so a test can compare with the committed ones."""
    core = core or core_package()
    resources = [with_snapshot(r, core) if r["resourceType"] == "StructureDefinition" else r for r in source_resources()]
    examples = [json.loads(p.read_text(encoding="utf-8")) for p in example_files(ig_dir)]
    guide = implementation_guide(resources, examples)
    files = {ig_dir / file_name(r): dump(r) for r in [*resources, guide]}
    structure_definitions = [r for r in resources if r["resourceType"] == "StructureDefinition"]
    files[CORE_VALUE_SETS_FILE] = dump(core_value_sets(structure_definitions, core))
    return files


def write(ig_dir: Path = IG_DIR) -> list[Path]:
    files = generate(ig_dir)
    stale = {p for p in ig_dir.glob("*-*.json")} - set(files)
    for path in stale:
        path.unlink()
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return sorted(files)
