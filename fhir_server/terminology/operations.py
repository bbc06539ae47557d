"""Terminology operations over the IG's artefacts: ``ValueSet/$expand``, ``ValueSet/$validate-code``,
``CodeSystem/$lookup`` and ``ConceptMap/$translate`` (FHIR R4 signatures, type and instance level).

Instance-level calls read the ValueSet / CodeSystem / ConceptMap from the store and resolve it by
``url`` in the IG terminology (a stored ValueSet that is not the IG's is expanded from its compose).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from fhir_server.api.operations import OperationContext, operation
from fhir_server.errors import FhirError
from fhir_server.formats.json import loads
from fhir_server.terminology.registry import Expansion, Terminology, ig_terminology


def _terminology() -> Terminology:
    return ig_terminology()


def _stored(ctx: OperationContext) -> dict | None:
    if ctx.id is None:
        return None
    return loads(ctx.repository.read(ctx.resource_type, ctx.id).body)


def _canonical(value: str | None) -> str | None:
    return value.split("|", 1)[0] if value else value


def _int(ctx: OperationContext, name: str, default: int | None) -> int | None:
    value = ctx.param(name)
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise FhirError(400, f"parameter {name} must be an integer", "invalid") from None
    if number < 0:
        raise FhirError(400, f"parameter {name} must not be negative", "invalid")
    return number


def _display(terminology: Terminology, system: str, code: str, display: str, language: str | None) -> str:
    if language and not language.lower().startswith("zh"):
        concept = terminology.lookup(system, code) or {}
        for designation in concept.get("designation", []):
            if designation.get("language", "").lower().startswith(language.lower()[:2]):
                return designation["value"]
    return display


def _value_set_expansion(ctx: OperationContext) -> tuple[dict, Expansion]:
    terminology = _terminology()
    vs = ctx.param("valueSet") or _stored(ctx)
    url = _canonical(ctx.param("url")) or (vs or {}).get("url")
    if url and (url in terminology.value_sets or url in terminology.core_expansions):
        expansion = terminology.expansion(url)
        return terminology.value_sets.get(url) or {"resourceType": "ValueSet", "url": url, "status": "active"}, expansion
    if isinstance(vs, dict) and vs.get("compose"):
        return vs, terminology.expand_resource(vs)
    if url is None:
        raise FhirError(400, "a value set is needed: the 'url' or 'valueSet' parameter, or an instance", "required")
    raise FhirError(404, f"value set {url} is not known to this server", "not-found")


@operation("expand", types=["ValueSet"], levels=("type", "instance"), methods=("GET", "POST"))
def expand(ctx: OperationContext) -> dict:
    vs, expansion = _value_set_expansion(ctx)
    if expansion.open_systems:
        raise FhirError(
            422,
            f"value set {vs.get('url')} includes code systems this server cannot enumerate: {', '.join(sorted(expansion.open_systems))}",
            "too-costly",
        )
    terminology = _terminology()
    text_filter = (ctx.param("filter") or "").lower()
    language = ctx.param("displayLanguage")
    offset = _int(ctx, "offset", 0)
    count = _int(ctx, "count", None)
    contains = []
    for (system, code), display in expansion.concepts.items():
        shown = _display(terminology, system, code, display, language)
        if text_filter and text_filter not in code.lower() and text_filter not in shown.lower() and text_filter not in display.lower():
            continue
        entry = {"system": system, "code": code}
        if shown:
            entry["display"] = shown
        concept = terminology.lookup(system, code) or {}
        if ctx.param("includeDesignations") in (True, "true") and concept.get("designation"):
            entry["designation"] = concept["designation"]
        contains.append(entry)
    total = len(contains)
    page = contains[offset : None if count is None else offset + count]
    parameters = [{"name": "offset", "valueInteger": offset}]
    if count is not None:
        parameters.append({"name": "count", "valueInteger": count})
    if text_filter:
        parameters.append({"name": "filter", "valueString": text_filter})
    result = {k: v for k, v in vs.items() if k not in ("compose", "meta", "text", "expansion")}
    result["resourceType"] = "ValueSet"
    result["expansion"] = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "total": total,
        "offset": offset,
        "parameter": parameters,
        "contains": page,
    }
    return result


def _coded_inputs(ctx: OperationContext) -> list[tuple[str | None, str, str | None]]:
    """(system, code, display) candidates from code/system, coding or codeableConcept."""
    coding = ctx.param("coding")
    concept = ctx.param("codeableConcept")
    if isinstance(coding, dict):
        return [(coding.get("system"), coding.get("code", ""), coding.get("display"))]
    if isinstance(concept, dict):
        return [(c.get("system"), c.get("code", ""), c.get("display")) for c in concept.get("coding", [])]
    code = ctx.param("code")
    if code is None:
        raise FhirError(400, "a code is needed: 'code' (with 'system'), 'coding' or 'codeableConcept'", "required")
    return [(ctx.param("system"), code, ctx.param("display"))]


def _parameters(*parameters: dict) -> dict:
    return {"resourceType": "Parameters", "parameter": [p for p in parameters if p]}


@operation("validate-code", types=["ValueSet"], levels=("type", "instance"), methods=("GET", "POST"))
def validate_code(ctx: OperationContext) -> dict:
    vs, expansion = _value_set_expansion(ctx)
    url = vs.get("url")
    unknown = None
    for system, code, display in _coded_inputs(ctx):
        verdict = expansion.contains(system, code)
        if verdict:
            systems = [system] if system else sorted(expansion.by_code.get(code, ()))
            found = expansion.concepts.get((systems[0], code), "")
            if display and found and display != found:
                concept = _terminology().lookup(systems[0], code) or {}
                names = {found, *(d.get("value") for d in concept.get("designation", []))}
                if display not in names:
                    return _parameters(
                        {"name": "result", "valueBoolean": False},
                        {"name": "message", "valueString": f"display {display!r} is not a display of {code} (expected {found!r})"},
                        {"name": "display", "valueString": found},
                    )
            return _parameters({"name": "result", "valueBoolean": True}, {"name": "display", "valueString": found} if found else {})
        if verdict is None:
            unknown = system
    message = (
        f"code system {unknown} is not available to this server" if unknown else f"the code is not in the value set {url}"
    )
    return _parameters({"name": "result", "valueBoolean": False}, {"name": "message", "valueString": message})


@operation("lookup", types=["CodeSystem"], levels=("type", "instance"), methods=("GET", "POST"))
def lookup(ctx: OperationContext) -> dict:
    terminology = _terminology()
    stored = _stored(ctx)
    system, code, _ = _coded_inputs(ctx)[0]
    system = system or (stored or {}).get("url")
    if not system:
        raise FhirError(400, "a code system is needed: 'system', 'coding' or an instance", "required")
    concept = terminology.lookup(system, code)
    if concept is None:
        raise FhirError(404, f"code {code!r} is not known in {system}", "not-found")
    cs = terminology.code_systems.get(system, {})
    parameters = [
        {"name": "name", "valueString": cs.get("name") or system},
        {"name": "version", "valueString": cs["version"]} if cs.get("version") else {},
        {"name": "display", "valueString": concept.get("display", "")},
        {"name": "definition", "valueString": concept["definition"]} if concept.get("definition") else {},
    ]
    for designation in concept.get("designation", []):
        parameters.append(
            {
                "name": "designation",
                "part": [
                    {"name": "language", "valueCode": designation.get("language", "")},
                    {"name": "value", "valueString": designation.get("value", "")},
                ],
            }
        )
    return _parameters(*parameters)


@operation("translate", types=["ConceptMap"], levels=("type", "instance"), methods=("GET", "POST"))
def translate(ctx: OperationContext) -> dict:
    terminology = _terminology()
    stored = _stored(ctx)
    url = _canonical(ctx.param("url")) or (stored or {}).get("url")
    if url and url not in terminology.concept_maps:
        raise FhirError(404, f"concept map {url} is not known to this server", "not-found")
    system, code, _ = _coded_inputs(ctx)[0]
    if not system:
        raise FhirError(400, "$translate needs the source code system ('system' or 'coding')", "required")
    matches = terminology.translate(system, code, url, ctx.param("targetsystem"))
    target = _canonical(ctx.param("target"))
    if target:
        matches = [m for m in matches if terminology.concept_maps[m["source"]].get("targetUri") == target]
    parameters = [{"name": "result", "valueBoolean": bool(matches)}]
    if not matches:
        parameters.append({"name": "message", "valueString": f"no mapping for {system}#{code}"})
    for match in matches:
        concept = {"system": match["system"], "code": match["code"]}
        if match.get("display"):
            concept["display"] = match["display"]
        parameters.append(
            {
                "name": "match",
                "part": [
                    {"name": "equivalence", "valueCode": match["equivalence"]},
                    {"name": "concept", "valueCoding": concept},
                    {"name": "source", "valueUri": match["source"]},
                ],
            }
        )
    return _parameters(*parameters)
