"""The IG's identity, read once from ``profiles/ig.json``: the single definition of the canonical base.

Every artefact URL (``{CANONICAL}/StructureDefinition/...``), identifier system and code system the IG
defines is derived from :data:`CANONICAL`; nothing else in the package spells the base out.
"""

from __future__ import annotations

import json
from pathlib import Path

#: the IG source directory: the repository's ``profiles/``
IG_DIR = Path(__file__).resolve().parents[2] / "profiles"

IG_META: dict = json.loads((IG_DIR / "ig.json").read_text(encoding="utf-8"))

CANONICAL: str = IG_META["canonical"].rstrip("/")
PACKAGE_ID: str = IG_META["packageId"]
VERSION: str = IG_META["version"]


def url(resource_type: str, id_: str) -> str:
    """Canonical URL of an IG artefact, e.g. ``url("StructureDefinition", "referral-request")``."""
    return f"{CANONICAL}/{resource_type}/{id_}"


def identifier_system(name: str) -> str:
    """URI of an identifier system the IG defines (where no national OID is known)."""
    return f"{CANONICAL}/sid/{name}"


def is_ig_url(value: str) -> bool:
    return value.startswith(CANONICAL + "/")
