"""Builds the IG as a standard FHIR NPM package (``NAME-VERSION.tgz``) that other FHIR tools can load.

Layout (FHIR package specification): ``package/package.json`` (name, version, ``fhirVersions``,
dependency on hl7.fhir.r4.core 4.0.1), ``package/.index.json`` (one entry per resource file), the
conformance resources as ``package/{Type}-{id}.json``, and the examples under ``package/example/``
with their own ``.index.json``. Entries are sorted and dated by the IG's date, so a build is reproducible.
"""

from __future__ import annotations

import io
import json
import tarfile
from datetime import datetime, timezone
from pathlib import Path

from fhir_server.ig.canonical import CANONICAL, IG_DIR, IG_META, PACKAGE_ID, VERSION
from fhir_server.ig.loader import examples, ig_resources

_INDEX_KEYS = ("resourceType", "id", "url", "version", "kind", "type", "supplements")


def package_manifest() -> dict:
    return {
        "name": PACKAGE_ID,
        "version": VERSION,
        "description": IG_META["description"],
        "title": IG_META["title"],
        "type": "fhir.ig",
        "canonical": CANONICAL,
        "url": CANONICAL,
        "license": IG_META["license"],
        "author": IG_META["publisher"],
        "fhirVersions": [IG_META["fhirVersion"]],
        "jurisdiction": "urn:iso:std:iso:3166#CN",
        "dependencies": {"hl7.fhir.r4.core": "4.0.1"},
    }


def _index(named: list[tuple[str, dict]]) -> dict:
    files = []
    for filename, resource in named:
        entry = {"filename": filename}
        entry.update({k: resource[k] for k in _INDEX_KEYS if k in resource})
        files.append(entry)
    return {"index-version": 1, "files": files}


def _file_name(resource: dict) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def package_files(ig_dir: Path = IG_DIR) -> dict[str, bytes]:
    """Archive path → content of every file in the package."""
    def dump(value) -> bytes:
        return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    resources = [(_file_name(r), r) for r in ig_resources(ig_dir)]
    example_resources = [(_file_name(r), r) for r in examples(ig_dir)]
    files = {"package/package.json": dump(package_manifest()), "package/.index.json": dump(_index(resources))}
    for name, resource in resources:
        files[f"package/{name}"] = dump(resource)
    files["package/example/.index.json"] = dump(_index(example_resources))
    for name, resource in example_resources:
        files[f"package/example/{name}"] = dump(resource)
    return files


def build_package(out_dir: Path, ig_dir: Path = IG_DIR) -> Path:
    """Write ``{packageId}-{version}.tgz`` into ``out_dir`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE_ID}-{VERSION}.tgz"
    mtime = int(datetime.fromisoformat(IG_META["date"]).replace(tzinfo=timezone.utc).timestamp())
    with tarfile.open(target, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for name, content in sorted(package_files(ig_dir).items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = mtime
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(content))
    return target
