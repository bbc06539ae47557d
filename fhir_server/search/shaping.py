"""``_summary`` and ``_elements``: return a subset of a resource, marked SUBSETTED as the spec asks.

Which top-level elements are summary or mandatory comes from the R4 StructureDefinitions
(``data/elements.json``, generated with the search parameters).
"""

from __future__ import annotations

from .paths import TYPE_SUFFIXES
from .registry import default_registry

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "Resource encoded in summary mode"}
_ALWAYS = ("resourceType", "id", "meta")


def _matches(key: str, names: set[str], choices: tuple[str, ...]) -> bool:
    if key in names:
        return True
    if key.startswith("_") and key[1:] in names:  # primitive extensions travel with their element
        return True
    bare = key.lstrip("_")
    return any(bare.startswith(c) and bare[len(c):] in TYPE_SUFFIXES for c in choices)


def _select(resource: dict, names: set[str]) -> dict:
    choices = tuple(n[:-3] for n in names if n.endswith("[x]"))
    names = {n[:-3] if n.endswith("[x]") else n for n in names}
    return {k: v for k, v in resource.items() if k in _ALWAYS or _matches(k, names, choices)}


def _mark(resource: dict) -> dict:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if not (isinstance(t, dict) and t.get("code") == "SUBSETTED")]
    meta["tag"] = tags + [SUBSETTED]
    resource["meta"] = meta
    return resource


def apply(resource: dict, summary: str | None, elements: list[str] | None) -> dict:
    """The subset of ``resource`` asked for; the resource itself when nothing is asked."""
    if (not summary or summary in ("false", "count")) and not elements:
        return resource
    info = default_registry().elements.get(resource.get("resourceType"), {"summary": [], "mandatory": []})
    mandatory = set(info["mandatory"])
    if summary == "true":
        shaped = _select(resource, set(info["summary"]) | mandatory)
    elif summary == "text":
        shaped = _select(resource, {"text"} | mandatory)
    elif summary == "data":
        shaped = {k: v for k, v in resource.items() if k != "text"}
    else:
        wanted = {e.split(".", 1)[0] for e in elements or ()}
        shaped = _select(resource, wanted | mandatory)
    return _mark(shaped)
