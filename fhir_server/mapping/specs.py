"""Mapping specs: YAML/JSON files in ``mappings/``, validated by the JSON Schema there, compiled once.

Validation errors name the file and the JSON path of the offending value. Compilation turns
source paths (``PID-5.1`` or an XPath), target paths (``code.coding[]``), conditions and
templates into small objects the engine runs without re-parsing anything per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fhir_server.formats.json import loads
from fhir_server.mapping.conceptmaps import ConceptMapIndex, load_conceptmaps
from fhir_server.mapping.errors import SpecError

#: the shipped mappings directory (repository root /mappings)
DEFAULT_MAPPINGS_DIR = Path(__file__).resolve().parents[2] / "mappings"

COMPOSITE_TYPES_V2 = {"CX", "XPN", "XAD", "XTN", "CWE", "CE", "CNE", "CF", "XCN-identifier", "XCN-name", "CQ", "EI", "HD"}
COMPOSITE_TYPES_XML = {"II", "CD", "PN", "AD", "TEL", "PQ"}
SCALAR_TYPES = {"string", "code", "date", "dateTime", "instant", "integer", "positiveInt", "decimal", "boolean", "uri", "id"}


def _json_path(error: jsonschema.ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


@lru_cache(maxsize=4)
def _validator(schema_path: Path) -> jsonschema.Draft202012Validator:
    schema = loads(schema_path.read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def read_spec_file(path: Path, schema_path: Path) -> dict:
    """Load one spec and validate it; SpecError names the file and JSON path."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    errors = sorted(_validator(schema_path).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise SpecError(f"{path}: {_json_path(best)}: {best.message}")
    return data


# --- compiled forms ---------------------------------------------------------------------------

_TARGET_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\[(\d*|-1)\])?\Z")
_TEMPLATE = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class Step:
    name: str
    #: None: a single element; "append": add a list item; int: a list index
    mode: Any = None


def compile_target(text: str, where: str) -> tuple[Step, ...]:
    steps = []
    for part in text.split("."):
        match = _TARGET_STEP.match(part)
        if not match:
            raise SpecError(f"{where}.target: {text!r} is not a target path like 'code.coding[]'")
        name, bracket, index = match.groups()
        steps.append(Step(name, None if bracket is None else ("append" if index == "" else int(index))))
    return tuple(steps)


@dataclass
class Condition:
    source: Any
    op: str
    operand: Any
    text: str


@dataclass
class Template:
    parts: list  # str literals and compiled source paths alternately

    @property
    def is_constant(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)


@dataclass
class Rule:
    where: str
    target: tuple[Step, ...]
    source: Any = None
    source_text: str = ""
    type: str = "string"
    value: Any = None
    template: Template | None = None
    conceptmap: ConceptMapIndex | None = None
    system: Template | None = None
    system_from: list = field(default_factory=list)  # [(component, ConceptMapIndex)]
    when: list[Condition] = field(default_factory=list)
    fields: list["Rule"] = field(default_factory=list)
    reference: str = ""
    conditional_reference: str = ""  # resource type for a Type?identifier= reference
    first: bool = False
    required: bool = False
    #: what produces the value: fields, value, reference, condref, template, scalar, composite (set by finish())
    kind: str = ""
    appends: bool = False
    #: the element name when the target is one plain step (fast "already set?" check)
    simple_target: str | None = None
    #: element names nested rules fill with constants only: an object with nothing else is dropped
    constant_names: frozenset = frozenset()

    def finish(self) -> "Rule":
        self.constant_names = frozenset(r.target[0].name for r in self.fields if r.kind == "value")
        self.appends = self.target[-1].mode == "append" if self.target else False
        self.simple_target = self.target[0].name if len(self.target) == 1 and self.target[0].mode is None else None
        if self.fields:
            self.kind = "fields"
        elif self.value is not None:
            self.kind = "value"
        elif self.reference:
            self.kind = "reference"
        elif self.conditional_reference:
            self.kind = "condref"
        elif self.template is not None:
            self.kind = "template"
        elif self.type in SCALAR_TYPES:
            self.kind = "scalar"
        else:
            self.kind = "composite"
        return self


@dataclass
class ResourceDef:
    key: str
    resource_type: str
    where: str
    anchor: Any = None
    anchor_text: str = ""
    for_each: bool = False
    required: bool = False
    when: list[Condition] = field(default_factory=list)
    method: str = "create"
    identity_systems: list[str] = field(default_factory=list)
    status_via: dict[str, str] = field(default_factory=dict)
    group_segments: frozenset = frozenset()
    rules: list[Rule] = field(default_factory=list)


@dataclass
class Spec:
    id: str
    kind: str
    path: Path
    title: str = ""
    message_types: list[str] = field(default_factory=list)
    root: str = ""
    namespaces: dict[str, str] = field(default_factory=dict)
    match: Any = None
    required_segments: list[str] = field(default_factory=list)
    ignored_segments: set[str] = field(default_factory=set)
    ignored_fields: set[str] = field(default_factory=set)
    resources: list[ResourceDef] = field(default_factory=list)
    #: XML: compiled XPaths of elements deliberately left unmapped
    ignored_paths: list = field(default_factory=list)
    #: reverse specs: the output segments
    segments: list[dict] = field(default_factory=list)
    raw: dict = field(default_factory=dict)


class Compiler:
    """Compile one validated spec document; the path language depends on the spec's kind."""

    def __init__(self, path: Path, data: dict, conceptmaps: dict[str, ConceptMapIndex], systems: dict[str, str], path_compiler):
        self.file = path
        self.data = data
        self.conceptmaps = conceptmaps
        self.systems = systems
        self.compile_path = path_compiler
        self.keys: list[str] = []
        self.all_keys: list[str] = [r.get("key", "") for r in data.get("resources", [])]

    def error(self, where: str, text: str) -> SpecError:
        return SpecError(f"{self.file}: {where}: {text}")

    def path(self, text: str, where: str):
        try:
            return self.compile_path(text)
        except ValueError as exc:
            raise self.error(where, str(exc)) from None

    def conceptmap(self, name: str, where: str) -> ConceptMapIndex:
        found = self.conceptmaps.get(name)
        if found is None:
            raise self.error(where, f"unknown ConceptMap {name!r} (not in mappings/conceptmaps)")
        return found

    def system_text(self, text: str, where: str) -> str:
        if text.startswith("@"):
            if text[1:] not in self.systems:
                raise self.error(where, f"unknown identifier system {text!r} (not in mappings/systems.yaml)")
            return self.systems[text[1:]]
        return text

    def template(self, text: str, where: str) -> Template:
        parts: list = []
        position = 0
        for match in _TEMPLATE.finditer(text):
            parts.append(text[position : match.start()])
            parts.append(self.path(match.group(1), where))
            position = match.end()
        parts.append(text[position:])
        return Template([p for p in parts if p != ""])

    def conditions(self, items: list[dict], where: str) -> list[Condition]:
        out = []
        for i, item in enumerate(items):
            here = f"{where}.when[{i}]"
            source = self.path(item["source"], f"{here}.source")
            for op in ("equals", "in", "exists", "matches", "notIn", "atLeastDays"):
                if op in item:
                    operand = item[op]
                    if op == "matches":
                        try:
                            operand = re.compile(operand)
                        except re.error as exc:
                            raise self.error(f"{here}.matches", f"invalid regular expression: {exc}") from None
                    out.append(Condition(source, op, operand, item["source"]))
        return out

    def rule(self, data: dict, where: str) -> Rule:
        rule = Rule(where=where, target=compile_target(data["target"], where))
        if "source" in data:
            rule.source_text = data["source"]
            rule.source = self.path(data["source"], f"{where}.source")
        rule.type = data.get("type", "string")
        rule.value = data.get("value")
        if isinstance(rule.value, str) and rule.value.startswith("@"):
            rule.value = self.system_text(rule.value, f"{where}.value")
        if "template" in data:
            rule.template = self.template(data["template"], f"{where}.template")
        if "conceptMap" in data:
            rule.conceptmap = self.conceptmap(data["conceptMap"], f"{where}.conceptMap")
        if "system" in data:
            rule.system = self.template(self.system_text(data["system"], f"{where}.system"), f"{where}.system")
        for i, item in enumerate(data.get("systemFrom", [])):
            rule.system_from.append((item["component"], self.conceptmap(item["conceptMap"], f"{where}.systemFrom[{i}].conceptMap")))
        rule.when = self.conditions(data.get("when", []), where)
        rule.fields = [self.rule(d, f"{where}.fields[{i}]") for i, d in enumerate(data.get("fields", []))]
        if "reference" in data:
            if data["reference"] not in self.all_keys:
                raise self.error(f"{where}.reference", f"{data['reference']!r} is not a resource key of this spec ({', '.join(self.all_keys) or 'none'})")
            rule.reference = data["reference"]
        if "conditionalReference" in data:
            rule.conditional_reference = data["conditionalReference"]
            if not rule.source and not rule.template:
                raise self.error(where, "a conditionalReference needs a source (the identifier value) or a template (the query)")
        rule.first = data.get("first", False)
        rule.required = data.get("required", False)
        return rule.finish()

    def compile(self, kind: str) -> Spec:
        data = self.data
        spec = Spec(id=data["id"], kind=kind, path=self.file, title=data.get("title", ""), raw=data)
        spec.message_types = list(data.get("messageTypes", []))
        spec.root = data.get("root", "")
        spec.namespaces = dict(data.get("namespaces", {}))
        spec.required_segments = list(data.get("requiredSegments", []))
        spec.ignored_segments = set(data.get("ignoredSegments", []))
        spec.ignored_fields = set(data.get("ignoredFields", []))
        if "match" in data:
            spec.match = self.path(data["match"], "$.match")
        spec.ignored_paths = [self.path(p, f"$.ignoredPaths[{i}]") for i, p in enumerate(data.get("ignoredPaths", []))]
        for r, item in enumerate(data.get("resources", [])):
            where = f"$.resources[{r}]"
            if item["key"] in self.keys:
                raise self.error(f"{where}.key", f"resource key {item['key']!r} is used twice")
            if "resourceType" not in item:
                raise self.error(where, f"resource {item['key']!r} names neither a resourceType nor a segment map (use)"
                                        " and is not a resource of the spec it extends")
            rdef = ResourceDef(key=item["key"], resource_type=item["resourceType"], where=where)
            anchor = item.get("segment") or item.get("context")
            if anchor:
                rdef.anchor_text = anchor
                rdef.anchor = self.path(anchor, f"{where}.segment") if kind == "xml" else anchor
            rdef.for_each = item.get("forEach", False)
            rdef.required = item.get("required", False)
            rdef.when = self.conditions(item.get("when", []), where)
            identity = item.get("identity", {})
            rdef.method = identity.get("method", "create")
            rdef.identity_systems = [self.system_text(s, f"{where}.identity.systems") for s in identity.get("systems", [])]
            rdef.status_via = dict(item.get("statusVia", {}))
            rdef.group_segments = frozenset(item.get("groupSegments", []))
            rdef.rules = [self.rule(d, f"{where}.fields[{i}]") for i, d in enumerate(item.get("fields", []))]
            self.keys.append(rdef.key)
            spec.resources.append(rdef)
        spec.segments = list(data.get("segments", []))
        return spec


@dataclass
class MappingLibrary:
    """All specs and ConceptMaps of one mappings directory."""

    directory: Path
    specs: list[Spec]
    conceptmaps: dict[str, ConceptMapIndex]
    systems: dict[str, str]
    by_message_type: dict[str, Spec] = field(default_factory=dict)
    xml_specs: list[Spec] = field(default_factory=list)
    reverse: dict[str, Spec] = field(default_factory=dict)
    #: (sending facility, message type) → a dialect spec
    dialects: dict[tuple[str, str], Spec] = field(default_factory=dict)

    def spec_for(self, message_code: str, trigger: str, sender: str = "") -> Spec | None:
        key = f"{message_code}^{trigger}"
        if sender and self.dialects:
            dialect = self.dialects.get((sender, key)) or self.dialects.get((sender, message_code))
            if dialect is not None:
                return dialect
        return self.by_message_type.get(key) or self.by_message_type.get(message_code)


def merge_dialect(base: dict, dialect: dict) -> dict:
    """A dialect spec on top of its base: its rules for an existing resource run first (so they
    win for single-valued elements), new resources are added, ignore lists are joined."""
    import copy

    merged = copy.deepcopy(base)
    merged["id"] = dialect["id"]
    merged["title"] = dialect.get("title", base.get("title", ""))
    for key in ("requiredSegments", "ignoredSegments", "ignoredFields"):
        merged[key] = list(dict.fromkeys(base.get(key, []) + dialect.get(key, [])))
    by_key = {r["key"]: r for r in merged.get("resources", [])}
    for resource in dialect.get("resources", []):
        existing = by_key.get(resource["key"])
        if existing is None:
            merged.setdefault("resources", []).append(copy.deepcopy(resource))
            continue
        existing["fields"] = copy.deepcopy(resource.get("fields", [])) + existing.get("fields", [])
        for key in ("when", "identity", "segment", "forEach", "required", "groupSegments", "statusVia"):
            if key in resource:
                existing[key] = copy.deepcopy(resource[key])
    return merged


def _load_segment_maps(directory: Path, schema_path: Path) -> dict[str, dict]:
    maps: dict[str, dict] = {}
    folders = [DEFAULT_MAPPINGS_DIR / "segments"]
    if directory != DEFAULT_MAPPINGS_DIR:
        folders.append(directory / "segments")
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            data = read_spec_file(path, schema_path)
            if data["kind"] != "segment-map":
                raise SpecError(f"{path}: $.kind: files in segments/ are segment maps")
            maps[data["id"]] = data["resource"]
    return maps


def _expand_uses(path: Path, data: dict, segment_maps: dict[str, dict]) -> dict:
    """Resources written as ``use: <segment map>``: the map's resource, with this item's keys on top
    and this item's fields run first."""
    import copy

    for i, item in enumerate(data.get("resources", [])):
        name = item.get("use")
        if not name:
            continue
        if name not in segment_maps:
            raise SpecError(f"{path}: $.resources[{i}].use: no segment map {name!r} in mappings/segments")
        merged = copy.deepcopy(segment_maps[name])
        for key, value in item.items():
            if key == "fields":
                merged["fields"] = copy.deepcopy(value) + merged.get("fields", [])
            elif key != "use":
                merged[key] = copy.deepcopy(value)
        data["resources"][i] = merged
    return data


def load_library(directory: Path | None = None) -> MappingLibrary:
    """Load, validate and compile every spec under ``directory`` (default: the shipped mappings)."""
    from fhir_server.mapping.hl7v2.paths import compile_v2_path
    from fhir_server.mapping.xml import compile_xpath

    directory = Path(directory or DEFAULT_MAPPINGS_DIR)
    schema_path = directory / "schema" / "mapping-spec.schema.json"
    if not schema_path.exists():
        schema_path = DEFAULT_MAPPINGS_DIR / "schema" / "mapping-spec.schema.json"
    conceptmaps = load_conceptmaps(DEFAULT_MAPPINGS_DIR.parent / "profiles", "ConceptMap-*.json")
    conceptmaps.update(load_conceptmaps(DEFAULT_MAPPINGS_DIR / "conceptmaps"))
    if directory != DEFAULT_MAPPINGS_DIR and (directory / "conceptmaps").is_dir():
        for key, value in load_conceptmaps(directory / "conceptmaps").items():
            conceptmaps[key] = value  # a dialect directory may override a shipped table
    systems_file = directory / "systems.yaml"
    if not systems_file.exists():
        systems_file = DEFAULT_MAPPINGS_DIR / "systems.yaml"
    systems = yaml.safe_load(systems_file.read_text(encoding="utf-8")) or {}
    if not isinstance(systems, dict) or not all(isinstance(v, str) for v in systems.values()):
        raise SpecError(f"{systems_file}: $: expected a mapping of name → system URI")
    library = MappingLibrary(directory, [], conceptmaps, systems)
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.parent.name in ("hl7v2", "xml", "reverse", "dialects"))
    if directory != DEFAULT_MAPPINGS_DIR:
        # a site directory holds dialects on top of the shipped specs
        files = sorted(p for p in DEFAULT_MAPPINGS_DIR.rglob("*") if p.suffix in (".yaml", ".yml") and p.parent.name in ("hl7v2", "xml", "reverse")) + files
    segment_maps = _load_segment_maps(directory, schema_path)
    documents = [(path, _expand_uses(path, read_spec_file(path, schema_path), segment_maps)) for path in files]
    base_by_id = {data["id"]: data for _, data in documents if "extends" not in data}
    for path, data in documents:
        if "extends" in data:
            base = base_by_id.get(data["extends"])
            if base is None:
                raise SpecError(f"{path}: $.extends: no spec with id {data['extends']!r}")
            senders = data.get("senders", [])
            if not senders:
                raise SpecError(f"{path}: $.senders: a dialect names the sending facilities (MSH-4.1) it applies to")
            merged = merge_dialect(base, data)
            compiler = Compiler(path, merged, conceptmaps, systems, compile_v2_path if base["kind"] == "hl7v2" else compile_xpath(base.get("namespaces", {})))
            spec = compiler.compile(base["kind"])
            library.specs.append(spec)
            for sender in senders:
                for message_type in spec.message_types:
                    library.dialects[(sender, message_type)] = spec
            continue
        kind = data["kind"]
        compiler = Compiler(path, data, conceptmaps, systems, compile_xpath(data.get("namespaces", {})) if kind == "xml" else compile_v2_path)
        spec = compiler.compile(kind)
        library.specs.append(spec)
        if kind == "hl7v2":
            for message_type in spec.message_types:
                other = library.by_message_type.get(message_type)
                if other and other.path.parent == path.parent:
                    raise SpecError(f"{path}: $.messageTypes: {message_type} is already mapped by {other.path}")
                library.by_message_type[message_type] = spec
        elif kind == "xml":
            library.xml_specs.append(spec)
        else:
            library.reverse[spec.id] = spec
    return library
