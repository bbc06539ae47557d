"""Small builders for ElementDefinitions and conformance resources, so the IG's source stays readable."""

from __future__ import annotations

from fhir_server.ig.canonical import IG_META, VERSION, url
from fhir_server.ig.snapshot import element_path

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
DATE = IG_META["date"]
PUBLISHER = IG_META["publisher"]


def sd_url(id_: str) -> str:
    return url("StructureDefinition", id_)


def cs_url(id_: str) -> str:
    return url("CodeSystem", id_)


def vs_url(id_: str) -> str:
    return url("ValueSet", id_)


def bilingual(zh: str, en: str) -> str:
    return f"{zh} ({en})"


def el(
    element_id: str,
    zh: str | None = None,
    en: str | None = None,
    *,
    definition: tuple[str, str] | None = None,
    min: int | None = None,
    max: str | None = None,
    ms: bool = False,
    maps: dict[str, str] | None = None,
    **properties,
) -> dict:
    """One differential element; ``zh``/``en`` give the short text, ``definition`` a longer pair,
    ``maps`` mapping identity → what the element corresponds to there."""
    element: dict = {"id": element_id, "path": element_path(element_id)}
    if ":" in element_id.rsplit(".", 1)[-1]:
        element["sliceName"] = element_id.rsplit(":", 1)[-1]
    if "slicing" in properties:
        element["slicing"] = properties.pop("slicing")
    if zh is not None:
        element["short"] = bilingual(zh, en or "")
        zh_def, en_def = definition or (zh, en)
        element["definition"] = f"{zh_def}。{en_def}."
    if min is not None:
        element["min"] = min
    if max is not None:
        element["max"] = max
    element.update(properties)
    if ms:
        element["mustSupport"] = True
    if maps:
        element["mapping"] = [{"identity": identity, "map": text} for identity, text in maps.items()]
    return element


def slicing(discriminator_type: str, path: str, rules: str = "open", description: str | None = None) -> dict:
    result = {"discriminator": [{"type": discriminator_type, "path": path}], "rules": rules}
    if description:
        result["description"] = description
    return result


def binding(strength: str, value_set: str, description: str | None = None) -> dict:
    result = {"strength": strength, "valueSet": value_set}
    if description:
        result["description"] = description
    return result


def reference(*targets: str) -> list[dict]:
    """A Reference type to profiles: IG profile ids or core resource type names."""
    profiles = [sd_url(t) if t[0].islower() else CORE_SD + t for t in targets]
    return [{"code": "Reference", "targetProfile": profiles}]


def extension_type(extension_id: str) -> list[dict]:
    return [{"code": "Extension", "profile": [sd_url(extension_id)]}]


def constraint(key: str, zh: str, en: str, expression: str, severity: str = "error") -> dict:
    return {"key": key, "severity": severity, "human": f"{zh} ({en})", "expression": expression}


def structure_definition(
    id_: str,
    type_: str,
    title: str,
    description: str,
    elements: list[dict],
    *,
    kind: str = "resource",
    context: list[str] | None = None,
    mapping: list[dict] | None = None,
) -> dict:
    sd: dict = {
        "resourceType": "StructureDefinition",
        "id": id_,
        "url": sd_url(id_),
        "version": VERSION,
        "name": "".join(part.capitalize() for part in id_.split("-")),
        "title": title,
        "status": "active",
        "date": DATE,
        "publisher": PUBLISHER,
        "description": description,
        "fhirVersion": "4.0.1",
        **({"mapping": mapping} if mapping else {}),
        "kind": kind,
        "abstract": False,
    }
    if context:
        sd["context"] = [{"type": "element", "expression": c} for c in context]
    sd.update(
        {
            "type": type_,
            "baseDefinition": CORE_SD + type_,
            "derivation": "constraint",
            "differential": {"element": elements},
        }
    )
    return sd


def _value_elements(prefix: str, value_types: list[dict], value_binding: dict | None, zh: str, en: str) -> list[dict]:
    value = el(f"{prefix}.value[x]", zh, en, min=1, type=value_types)
    if value_binding:
        value["binding"] = value_binding
    return [value]


def simple_extension(
    id_: str,
    title: str,
    description: str,
    context: list[str],
    value_types: list[dict],
    *,
    value_binding: dict | None = None,
    zh: str,
    en: str,
) -> dict:
    elements = [
        el("Extension", zh, en, definition=(description.split(" / ")[0], title)),
        el("Extension.extension", max="0"),
        el("Extension.url", fixedUri=sd_url(id_)),
        *_value_elements("Extension", value_types, value_binding, zh, en),
    ]
    return structure_definition(id_, "Extension", title, description, elements, kind="complex-type", context=context)


def complex_extension(
    id_: str,
    title: str,
    description: str,
    context: list[str],
    parts: list[dict],
    *,
    zh: str,
    en: str,
) -> dict:
    """An extension made of sub-extensions; each part: name, zh, en, min, max, types, binding."""
    elements = [el("Extension", zh, en, definition=(description.split(" / ")[0], title)), el("Extension.extension", min=1)]
    for part in parts:
        prefix = f"Extension.extension:{part['name']}"
        elements += [
            el(prefix, part["zh"], part["en"], min=part.get("min", 0), max=part.get("max", "1"), ms=True),
            el(f"{prefix}.extension", max="0"),
            el(f"{prefix}.url", fixedUri=part["name"]),
            *_value_elements(prefix, part["types"], part.get("binding"), part["zh"], part["en"]),
        ]
    elements += [el("Extension.url", fixedUri=sd_url(id_)), el("Extension.value[x]", max="0")]
    return structure_definition(id_, "Extension", title, description, elements, kind="complex-type", context=context)


def metadata(resource_type: str, id_: str, title: str, description: str, canonical: str) -> dict:
    """The leading elements every IG terminology resource shares."""
    return {
        "resourceType": resource_type,
        "id": id_,
        "url": canonical,
        "version": VERSION,
        "name": "".join(part.capitalize() for part in id_.replace(".", "-").split("-")),
        "title": title,
        "status": "active",
        "date": DATE,
        "publisher": PUBLISHER,
        "description": description,
    }


def code_system(
    id_: str,
    title: str,
    description: str,
    concepts: list[tuple],
    *,
    system_url: str | None = None,
    content: str = "complete",
) -> dict:
    """A complete CodeSystem; concepts are (code, 中文 display, English display[, definition])."""
    return {
        **metadata("CodeSystem", id_, title, description, system_url or cs_url(id_)),
        "caseSensitive": True,
        "valueSet": vs_url(id_),
        "content": content,
        "count": len(concepts),
        "concept": [_concept(c) for c in concepts],
    }


def _concept(entry: tuple) -> dict:
    code, zh, en, *rest = entry
    concept = {"code": code, "display": zh}
    if rest:
        concept["definition"] = rest[0]
    concept["designation"] = [{"language": "en", "value": en}]
    return concept


def value_set(id_: str, title: str, description: str, include: list[dict]) -> dict:
    return {**metadata("ValueSet", id_, title, description, vs_url(id_)), "compose": {"include": include}}


def whole_system_value_set(code_system_resource: dict) -> dict:
    cs = code_system_resource
    return value_set(
        cs["id"],
        cs["title"],
        f"All codes of {cs['title']}",
        [{"system": cs["url"]}],
    )
