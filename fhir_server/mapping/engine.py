"""The mapping engine: runs a compiled spec over a parsed message and builds a transaction Bundle.

One interpreter serves HL7 v2 and XML: a ``Source`` adapter answers "which values does this
path select here" and converts composite data types; everything else — conditions,
repetitions, templates, ConceptMaps, references between produced resources, conditional
create/update entries — is shared. Anything in the message the spec did not read is reported
as a warning (and logged), never dropped silently.
"""

from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fhir_server.formats.json import dumps as json_dumps
from fhir_server.mapping import transforms
from fhir_server.mapping.errors import DATA_TYPE_ERROR, REQUIRED_FIELD_MISSING, TABLE_VALUE_NOT_FOUND, MappingError
from fhir_server.mapping.specs import ResourceDef, Rule, Spec, Step

log = logging.getLogger("fhir_server.mapping")

_NAMESPACE = uuid.UUID("5b0f3e4e-7c59-4a8e-9a53-2f2b8d1c6a10")


def _urn(name: str) -> str:
    """A name-based (version 5) UUID URN: the same message maps to the same fullUrls."""
    return "urn:uuid:" + str(uuid.uuid5(_NAMESPACE, name))


@dataclass
class Instance:
    key: str
    resource: dict
    full_url: str
    anchor: Any
    group: Any = None
    request: dict | None = None
    #: PATCH entries: status → intermediate status (see ResourceDef.status_via)
    status_via: dict | None = None


@dataclass
class MappingResult:
    bundle: dict
    warnings: list[str]
    spec_id: str
    #: the mapped resources (PATCH entries carry them only as JSON Patch inside the Bundle)
    instances: list[Instance] = field(default_factory=list)
    #: message identification for ACKs and duplicate detection ("" for documents without one)
    control_id: str = ""
    sender: str = ""
    message_type: str = ""


class Source:
    """What the engine needs from a message or document."""

    #: segments read only from the anchor's own group while the current resource is built
    scoped: frozenset = frozenset()

    def anchors(self, rdef: ResourceDef) -> list: ...

    def select(self, anchor, item, path) -> list: ...

    def text(self, item) -> str: ...

    def composite(self, type_name: str, item, rule: Rule, run: "Run") -> Any: ...

    def same_kind(self, a, b) -> bool:
        """Two anchors of the same kind (two ORC groups): references between their resources stay in-group."""
        return False

    def quantity(self, item) -> tuple[str, str] | None:
        """(value, unit) of a quantity-like value, for duration conditions."""
        return None

    def group_of(self, anchor) -> Any:
        """Resources made from the same anchor (or its group) reference each other first."""
        return None

    def location(self, anchor, item, path) -> str:
        return getattr(path, "text", str(path))

    def unused(self, spec: Spec) -> list[str]:
        return []


@dataclass
class Run:
    spec: Spec
    source: Source
    default_offset: str = "+08:00"
    seed: str = ""
    warnings: list[str] = field(default_factory=list)
    instances: dict[str, list[Instance]] = field(default_factory=dict)
    identities: dict[str, Instance] = field(default_factory=dict)
    #: references to resources built later in the spec: (target, rule, anchor), filled after the build
    pending: list = field(default_factory=list)
    built: set = field(default_factory=set)
    _counter: int = 0

    # --- values -------------------------------------------------------------------------------

    def first_text(self, anchor, item, path) -> str:
        for value in self.source.select(anchor, item, path):
            text = self.source.text(value)
            if text:
                return text
        return ""

    def render(self, template, anchor, item) -> str:
        out = []
        for part in template.parts:
            out.append(part if isinstance(part, str) else self.first_text(anchor, item, part))
        return "".join(out).strip()

    def holds(self, conditions, anchor, item) -> bool:
        for cond in conditions:
            values = [self.source.text(v) for v in self.source.select(anchor, item, cond.source)]
            values = [v for v in values if v]
            if cond.op == "exists":
                ok = bool(values) == bool(cond.operand)
            elif cond.op == "equals":
                ok = str(cond.operand) in values
            elif cond.op == "in":
                ok = any(v in cond.operand for v in values)
            elif cond.op == "notIn":
                ok = not any(v in cond.operand for v in values)
            elif cond.op == "atLeastDays":
                ok = any((days := _days(self.source.quantity(v))) is not None and days >= cond.operand
                         for v in self.source.select(anchor, item, cond.source))
            else:  # matches
                ok = any(cond.operand.search(v) for v in values)
            if not ok:
                return False
        return True

    def scalar(self, rule: Rule, text: str, anchor, item) -> Any:
        kind = rule.type
        try:
            if kind in ("string", "uri", "id"):
                return text
            if kind == "code":
                if rule.conceptmap is not None:
                    hit = rule.conceptmap.translate(text)
                    if hit is None:
                        return self.untranslated(rule, text, anchor, item)
                    return hit.code
                return text
            if kind in ("date", "dateTime", "instant"):
                return transforms.v2_datetime(text, self.default_offset, kind)
            if kind in ("integer", "positiveInt"):
                return transforms.to_integer(text)
            if kind == "decimal":
                return transforms.to_decimal(text)
            if kind == "boolean":
                if rule.conceptmap is not None:
                    hit = rule.conceptmap.translate(text)
                    if hit is None:
                        return self.untranslated(rule, text, anchor, item)
                    text = hit.code
                return transforms.to_boolean(text)
        except transforms.InvalidValue as exc:
            where = self.source.location(anchor, item, rule.source)
            raise MappingError(f"{where}: {exc}", DATA_TYPE_ERROR, where) from None
        raise MappingError(f"{rule.where}: unsupported type {kind!r}")

    def untranslated(self, rule: Rule, code: str, anchor, item):
        where = self.source.location(anchor, item, rule.source)
        text = f"{where}: code {code!r} is not in ConceptMap {rule.conceptmap.id}"
        if rule.required:
            raise MappingError(text, TABLE_VALUE_NOT_FOUND, where)
        self.warn(text + "; value not mapped")
        return None

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def translate_coding(self, rule: Rule, codeable: dict, anchor, item) -> dict:
        """Add the ConceptMap's target coding in front of the original one."""
        if rule.conceptmap is None:
            return codeable
        original = codeable.get("coding", [{}])[0]
        code = original.get("code", "")
        if not code:
            return codeable
        hit = rule.conceptmap.translate(code, original.get("system", ""))
        if hit is None:
            where = self.source.location(anchor, item, rule.source)
            text = f"{where}: code {code!r} is not in ConceptMap {rule.conceptmap.id}"
            if rule.required:
                raise MappingError(text, TABLE_VALUE_NOT_FOUND, where)
            self.warn(text + "; kept as sent")
            return codeable
        coding = {"system": hit.system, "code": hit.code}
        if hit.display:
            coding["display"] = hit.display
        if coding["system"] == original.get("system") and coding["code"] == code:
            return codeable
        codeable["coding"] = [coding] + codeable.get("coding", [])
        return codeable

    def system_for(self, rule: Rule, anchor, item) -> str:
        """systemFrom ConceptMaps first (type code, assigning authority…), then the ``system`` template as fallback."""
        for component, conceptmap in rule.system_from:
            key = item.get(component) if item is not None else ""
            if key:
                hit = conceptmap.translate(key)
                if hit is not None:
                    return hit.code
        if rule.system is not None:
            out = []
            for part in rule.system.parts:
                if isinstance(part, str):
                    out.append(part)
                else:
                    value = self.first_text(anchor, item, part)
                    if not value:
                        return ""  # a system built from an empty placeholder would be wrong
                    out.append(value)
            return "".join(out)
        return ""

    # --- rules ------------------------------------------------------------------------------

    def produce(self, rule: Rule, anchor, item) -> Any:
        kind = rule.kind
        if kind == "scalar":
            if item is None:
                return None
            text = self.source.text(item)
            return self.scalar(rule, text, anchor, item) if text else None
        if kind == "fields":
            obj: dict = {}
            self.apply(rule.fields, anchor, item, obj)
            if not obj or (rule.constant_names and rule.constant_names.issuperset(obj)):
                return None  # only constants (an extension url, a code system): nothing was in the message
            return obj
        if kind == "value":
            return rule.value
        if kind == "reference":
            if rule.reference not in self.built:
                return _PENDING
            return self.reference_to(rule.reference, anchor, many=rule.appends)
        if kind == "composite":
            return self.source.composite(rule.type, item, rule, self) if item is not None else None
        if kind == "condref":
            if rule.template is not None:  # the whole search query, e.g. patient:Patient.identifier=…&status=…
                query = self.render(rule.template, anchor, item)
                return {"reference": f"{rule.conditional_reference}?{query}"} if query else None
            value = self.source.text(item)
            system = self.system_for(rule, anchor, item)
            if not value:
                return None
            return {"reference": f"{rule.conditional_reference}?identifier={_query_token(system, value)}"}
        # template
        text = self.render(rule.template, anchor, item)
        if not text or rule.template.is_constant:
            return text or None
        return self.scalar(rule, text, anchor, item) if rule.type != "string" else text

    def apply(self, rules: list[Rule], anchor, item, target: dict) -> None:
        select = self.source.select
        for rule in rules:
            if not rule.appends:
                simple = rule.simple_target
                if (simple in target) if simple is not None else _is_set(target, rule.target):
                    continue  # an earlier rule (a dialect's, or a preferred source) already filled it
            if rule.source is None:
                if rule.when and not self.holds(rule.when, anchor, item):
                    continue
                value = self.produce(rule, anchor, item)
                if value is _PENDING:
                    self.pending.append((target, rule, anchor))
                    continue
                if value is None or value == "" or value == []:
                    if rule.required:
                        raise MappingError(f"{rule.where}: required value is missing", REQUIRED_FIELD_MISSING, rule.where)
                    continue
                _assign(target, rule.target, value)
                continue
            produced = False
            for value_item in select(anchor, item, rule.source):
                if rule.when and not self.holds(rule.when, anchor, value_item):
                    continue
                value = self.produce(rule, anchor, value_item)
                if value is None or value == "" or value == {}:
                    continue
                _assign(target, rule.target, value)
                produced = True
                if not rule.appends or rule.first:
                    break
            if not produced and rule.required:
                where = self.source.location(anchor, item, rule.source)
                raise MappingError(f"{where}: required field is missing or empty", REQUIRED_FIELD_MISSING, where)

    # --- resources and references ----------------------------------------------------------------

    def reference_to(self, key: str, anchor, many: bool) -> Any:
        found = self.instances.get(key, [])
        if not found:
            return None
        group = self.source.group_of(anchor)
        same_group = [inst for inst in found if group is not None and inst.group == group]
        if same_group:
            found = same_group  # the payer of this IN1, the order of this ORC group
        elif any(self.source.same_kind(inst.anchor, anchor) for inst in found):
            return None  # made from other groups of the same kind (another ORC's plan): not this one's
        if many:
            seen, refs = set(), []
            for inst in found:
                if inst.full_url not in seen:
                    seen.add(inst.full_url)
                    refs.append({"reference": inst.full_url})
            return refs
        return {"reference": found[0].full_url}

    def build(self) -> list[Instance]:
        ordered: list[Instance] = []
        for rdef in self.spec.resources:
            self.source.scoped = rdef.group_segments
            anchors = self.source.anchors(rdef)
            if not rdef.for_each:
                anchors = anchors[:1]
            if not anchors and rdef.required:
                where = rdef.anchor_text or rdef.key
                raise MappingError(f"{where}: required segment for {rdef.resource_type} ({rdef.key}) is missing", REQUIRED_FIELD_MISSING, where)
            for anchor in anchors:
                if rdef.when and not self.holds(rdef.when, anchor, None):
                    continue
                resource: dict = {"resourceType": rdef.resource_type}
                self.apply(rdef.rules, anchor, None, resource)
                if not _has_content(resource, rdef):
                    continue
                instance = self.identify(rdef, resource, anchor)
                if instance is None:
                    continue
                ordered.append(instance)
            self.built.add(rdef.key)
        for target, rule, anchor in self.pending:
            value = self.reference_to(rule.reference, anchor, many=rule.appends)
            if value:
                _assign(target, rule.target, value)
            elif rule.required:
                raise MappingError(f"{rule.where}: required reference to {rule.reference} has nothing to point to", REQUIRED_FIELD_MISSING, rule.where)
        return ordered

    def identify(self, rdef: ResourceDef, resource: dict, anchor) -> Instance | None:
        identifier = _pick_identifier(resource, rdef.identity_systems)
        request: dict
        if identifier:
            query = "identifier=" + _query_token(identifier.get("system", ""), identifier["value"])
            existing = self.identities.get(f"{rdef.resource_type}?{query}")
            if existing is not None:
                # the same resource twice in one message (two DG1 with one code): one entry, one reference
                if existing.key != rdef.key:
                    self.instances.setdefault(rdef.key, []).append(existing)
                else:
                    self.instances[rdef.key].append(Instance(rdef.key, existing.resource, existing.full_url, anchor, self.source.group_of(anchor)))
                return None
            full_url = _urn(f"{self.seed}|{rdef.resource_type}?{query}")
            if rdef.method == "update":
                request = {"method": "PUT", "url": f"{rdef.resource_type}?{query}"}
            elif rdef.method == "patch":
                request = {"method": "PATCH", "url": f"{rdef.resource_type}?{query}"}
            else:
                request = {"method": "POST", "url": rdef.resource_type, "ifNoneExist": query}
        elif rdef.method == "patch":
            raise MappingError(f"{rdef.resource_type} ({rdef.key}): no identifier to find the resource to update", REQUIRED_FIELD_MISSING, rdef.anchor_text)
        else:
            self._counter += 1
            full_url = _urn(f"{self.seed}|{rdef.key}|{self._counter}")
            request = {"method": "POST", "url": rdef.resource_type}
            self.warn(f"{rdef.resource_type} ({rdef.key}) has no identifier to match on: a repeated message creates it again")
        instance = Instance(rdef.key, resource, full_url, anchor, self.source.group_of(anchor), request,
                            rdef.status_via if rdef.method == "patch" else None)
        if identifier:
            self.identities[request.get("url") if request["method"] in ("PUT", "PATCH") else f"{rdef.resource_type}?{request['ifNoneExist']}"] = instance
        self.instances.setdefault(rdef.key, []).append(instance)
        return instance


_PENDING = object()
_SCALARS = {"string", "code", "date", "dateTime", "instant", "integer", "positiveInt", "decimal", "boolean", "uri", "id"}


_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:/|.-_~@")


_DAYS = {"d": 1, "D": 1, "day": 1, "days": 1, "天": 1, "日": 1, "wk": 7, "W": 7, "week": 7, "weeks": 7, "周": 7,
         "mo": 30, "M": 30, "month": 30, "months": 30, "月": 30}


def _days(quantity: tuple[str, str] | None) -> float | None:
    """A duration (value, unit) in days; None when it is not one."""
    if not quantity:
        return None
    value, unit = quantity
    factor = _DAYS.get((unit or "").strip())
    try:
        return float(value) * factor if factor else None
    except (TypeError, ValueError):
        return None


def _query_token(system: str, value: str) -> str:
    """``system|value`` for a search URL: FHIR search escapes (``\\,`` ``\\|`` ``\\$``), then percent-encoding."""
    if any(c in value for c in "\\,|$"):
        value = value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")
    token = f"{system}|{value}" if system else value
    if _PLAIN.issuperset(token):
        return token
    return quote(token, safe=":/|\\.-_~@")


def _pick_identifier(resource: dict, systems: list[str]) -> dict | None:
    identifiers = [i for i in resource.get("identifier", []) if i.get("value")] if isinstance(resource.get("identifier"), list) else (
        [resource["identifier"]] if isinstance(resource.get("identifier"), dict) and resource["identifier"].get("value") else []
    )
    for system in systems:
        for ident in identifiers:
            if ident.get("system") == system:
                return ident
    for ident in identifiers:
        if ident.get("system"):
            return ident
    return None


def _has_content(resource: dict, rdef: ResourceDef) -> bool:
    constants = {r.target[0].name for r in rdef.rules if r.value is not None}
    return any(key not in constants for key in resource if key != "resourceType")


def _is_set(target: dict, steps: tuple[Step, ...]) -> bool:
    node: Any = target
    for step in steps:
        if not isinstance(node, dict) or step.name not in node:
            return False
        node = node[step.name]
        if step.mode == "append":
            return False
        if isinstance(step.mode, int):
            if not isinstance(node, list) or not -len(node) <= step.mode < len(node):
                return False
            node = node[step.mode]
    return True


def _assign(target: dict, steps: tuple[Step, ...], value: Any) -> None:
    if len(steps) == 1:
        step = steps[0]
        if step.mode is None:
            existing = target.get(step.name)
            if existing is None:
                target[step.name] = value
                return
        elif step.mode == "append" and not isinstance(value, list):
            items = target.get(step.name)
            if items is None:
                target[step.name] = [value]
            elif value not in items:
                items.append(value)
            return
    node = target
    for step in steps[:-1]:
        if step.mode is None:
            node = node.setdefault(step.name, {})
        elif step.mode == "append":
            items = node.setdefault(step.name, [])
            items.append({})
            node = items[-1]
        else:
            items = node.setdefault(step.name, [])
            while len(items) <= step.mode:
                items.append({})
            node = items[step.mode]
    last = steps[-1]
    if last.mode == "append":
        items = node.setdefault(last.name, [])
        if isinstance(value, list):
            items.extend(v for v in value if v not in items)
        elif value not in items:
            items.append(value)
    elif last.mode is None:
        existing = node.get(last.name)
        if isinstance(existing, dict) and isinstance(value, dict):
            for key, item in value.items():
                existing.setdefault(key, item)
        elif existing is None:
            node[last.name] = value
    else:
        items = node.setdefault(last.name, [])
        while len(items) <= last.mode:
            items.append(None)
        if items[last.mode] is None:
            items[last.mode] = value


def json_patch(resource: dict, keep_identifier: bool = False) -> list[dict]:
    """JSON Patch setting every mapped top-level element (``add`` replaces an existing member)."""
    ops = []
    for key, value in resource.items():
        if key in ("resourceType", "id", "meta") or (key == "identifier" and not keep_identifier):
            continue
        if "urn:uuid:" in str(value):
            raise MappingError(f"{resource['resourceType']}.{key}: a patch cannot carry a reference to another entry of the Bundle")
        ops.append({"op": "add", "path": f"/{key}", "value": value})
    return ops


def patch_entry(full_url: str, url: str, ops: list[dict]) -> dict:
    data = base64.b64encode(json_dumps(ops)).decode("ascii")
    return {"fullUrl": full_url, "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data},
            "request": {"method": "PATCH", "url": url}}


def to_bundle(instances: list[Instance]) -> dict:
    entries = []
    for inst in instances:
        if inst.request["method"] == "PATCH":
            entries.append(patch_entry(inst.full_url, inst.request["url"], json_patch(inst.resource)))
        else:
            entries.append({"fullUrl": inst.full_url, "resource": inst.resource, "request": inst.request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def run_spec(spec: Spec, source: Source, default_offset: str = "+08:00", seed: str = "") -> tuple[dict, list[str], list[Instance]]:
    """Map one message/document; returns the transaction Bundle, the warnings and the mapped instances."""
    run = Run(spec, source, default_offset, seed)
    instances = run.build()
    run.warnings.extend(source.unused(spec))
    for warning in run.warnings:
        log.warning("mapping %s: %s", spec.id, warning)
    return to_bundle(instances), run.warnings, instances
