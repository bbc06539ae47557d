"""Profile validation driven by StructureDefinitions: the IG's profiles and extensions, compiled once.

Checks, each reported as an OperationOutcome issue with a FHIRPath location in ``expression``:
cardinality (``required`` / ``structure``), fixed and pattern values (``value``), bindings (required →
error, extensible → warning, preferred → information; ``code-invalid``), choice types, reference target
types (``structure``), slicing with value/pattern/type discriminators and closed rules, extensions
(known URL under the IG's canonical, context, value type and content; ``extension``) and the IG's
FHIRPath invariants (``invariant``). The structural check by the resource models runs separately.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

from fhir_server.errors import issue
from fhir_server.terminology.registry import Terminology
from fhir_server.validation.rules import CORE_PREFIX, ElementRule, RuleCompiler

_SEVERITY_BY_STRENGTH = {"required": "error", "extensible": "warning", "preferred": "information"}
_RESOURCE_CONTEXTS = frozenset(("Element", "Resource", "DomainResource"))


_PRIMITIVES = frozenset(
    "base64Binary boolean canonical code date dateTime decimal id instant integer markdown oid positiveInt"
    " string time unsignedInt uri url uuid".split()
)


def _type_of_suffix(suffix: str) -> str:
    """``String`` → ``string``, ``Coding`` → ``Coding``: the FHIR type named by a choice suffix."""
    lowered = suffix[0].lower() + suffix[1:]
    return lowered if lowered in _PRIMITIVES else suffix


def _matches_pattern(pattern: Any, value: Any) -> bool:
    """FHIR pattern semantics: every property of the pattern is present in the value (lists: each item matched)."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(key in value and _matches_pattern(p, value[key]) for key, p in pattern.items())
    if isinstance(pattern, list):
        if not isinstance(value, list):
            return False
        return all(any(_matches_pattern(p, v) for v in value) for p in pattern)
    return pattern == value


def _reference_type(reference: str, root: dict) -> str | None:
    if reference.startswith("#"):
        for contained in root.get("contained", []):
            if contained.get("id") == reference[1:]:
                return contained.get("resourceType")
        return None
    if reference.startswith("urn:"):
        return None
    parts = reference.split("?", 1)[0].split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-2] if len(parts) >= 2 else None


class _Run:
    """One validation: the resource, the issues found so far."""

    __slots__ = ("validator", "root", "issues")

    def __init__(self, validator: "ProfileValidator", root: dict):
        self.validator = validator
        self.root = root
        self.issues: list[dict] = []

    def add(self, severity: str, code: str, message: str, location: str) -> None:
        self.issues.append(issue(severity, code, message, [location]))

    # -- element tree ---------------------------------------------------------------------------------
    def children(self, rule: ElementRule, obj: dict, location: str) -> None:
        for child in rule.children:
            values = self._values(child, obj, location)
            count = len(values)
            if count < child.min:
                message = f"{child.path}: minimum required = {child.min}, but only found {count}"
                self.add("error", "required", message, f"{location}.{child.name}")
            if child.max is not None and count > child.max:
                message = f"{child.path}: max allowed = {child.max}, but found {count}"
                self.add("error", "structure", message, f"{location}.{child.name}")
            if not values:
                continue
            if child.slices:
                self.slices(child, values)
            for value, type_code, value_location in values:
                self.value(child, value, type_code, value_location)

    def _values(self, rule: ElementRule, obj: dict, location: str) -> list[tuple[Any, str, str]]:
        """(value, type code, FHIRPath location) of every occurrence of the element in ``obj``."""
        if rule.choice:
            found: list[tuple[Any, str, str]] = []
            prefix = rule.name
            for key, value in obj.items():
                if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper():
                    type_code = rule.json_names.get(key)
                    where = f"{location}.{prefix}.ofType({type_code or _type_of_suffix(key[len(prefix):])})"
                    if type_code is None:
                        self.add("error", "structure", f"{rule.path}: type {key[len(prefix):]} is not allowed here", where)
                        continue
                    found.append((value, type_code, where))
            return found
        name = rule.single_name
        value = obj.get(name)
        if value is None:
            if "_" + name in obj:
                return [(None, rule.single_type, f"{location}.{name}")]
            return []
        if isinstance(value, list):
            base = f"{location}.{name}"
            type_code = rule.single_type
            return [(item, type_code, f"{base}[{i}]") for i, item in enumerate(value)]
        return [(value, rule.single_type, f"{location}.{name}")]

    def value(self, rule: ElementRule, value: Any, type_code: str, location: str) -> None:
        if value is None:
            return
        if rule.fixed is not None and value != rule.fixed:
            self.add("error", "value", f"{rule.path}: value must be exactly {rule.fixed!r}", location)
        if rule.pattern is not None and not _matches_pattern(rule.pattern, value):
            self.add("error", "value", f"{rule.path}: value does not match the required pattern {rule.pattern!r}", location)
        if rule.binding is not None:
            self.binding(rule, value, type_code, location)
        if rule.target_types is not None and type_code == "Reference" and isinstance(value, dict):
            reference = value.get("reference")
            if isinstance(reference, str):
                target = _reference_type(reference, self.root)
                if target is not None and target not in rule.target_types:
                    allowed = ", ".join(sorted(rule.target_types))
                    self.add("error", "structure", f"{rule.path}: reference to {target} is not allowed (allowed: {allowed})", location)
        for invariant in rule.invariants:
            self.invariant(invariant, value, location)
        if isinstance(value, dict) and rule.children:
            self.children(rule, value, location)

    def binding(self, rule: ElementRule, value: Any, type_code: str, location: str) -> None:
        strength, value_set = rule.binding
        expansion = self.validator.terminology.expansion(value_set)
        if expansion is None:
            return
        if type_code == "code":
            verdict = expansion.contains(None, value) if isinstance(value, str) else False
            shown = value
        elif type_code == "Coding":
            verdict = expansion.contains(value.get("system"), value.get("code", "")) if isinstance(value, dict) else False
            shown = f"{value.get('system')}#{value.get('code')}" if isinstance(value, dict) else value
        else:  # CodeableConcept
            codings = value.get("coding", []) if isinstance(value, dict) else []
            if not codings:
                if strength != "required":
                    return
                verdict, shown = False, "(no coding)"
            else:
                verdicts = [expansion.contains(c.get("system"), c.get("code", "")) for c in codings]
                verdict = True if True in verdicts else (None if None in verdicts else False)
                shown = ", ".join(f"{c.get('system')}#{c.get('code')}" for c in codings)
        if verdict is False:
            self.add(
                _SEVERITY_BY_STRENGTH[strength],
                "code-invalid",
                f"{rule.path}: {shown} is not in the value set {value_set} ({strength} binding)",
                location,
            )

    def invariant(self, invariant, value: Any, location: str) -> None:
        try:
            result = invariant.evaluate(value)
        except Exception as exc:  # an invariant the engine cannot evaluate must not pass silently
            self.add("error", "invariant", f"{invariant.key}: could not be evaluated ({exc})", location)
            return
        if result and result[0] is False:
            self.add(invariant.severity, "invariant", f"{invariant.key}: {invariant.human}", location)

    # -- slicing --------------------------------------------------------------------------------------
    def slices(self, rule: ElementRule, values: list[tuple[Any, str, str]]) -> None:
        counts = [0] * len(rule.slices)
        for value, type_code, location in values:
            for index, slice_rule in enumerate(rule.slices):
                if self._in_slice(rule, slice_rule, value, type_code):
                    counts[index] += 1
                    self.value(slice_rule, value, type_code, location)
                    break
            else:
                if rule.slicing_rules == "closed":
                    self.add("error", "structure", f"{rule.path}: value matches none of the slices and slicing is closed", location)
        where = values[0][2].rsplit("[", 1)[0]
        for count, slice_rule in zip(counts, rule.slices):
            label = f"{rule.path}:{slice_rule.slice_name}"
            if count < slice_rule.min:
                self.add("error", "required", f"{label}: minimum required = {slice_rule.min}, but only found {count}", where)
            if slice_rule.max is not None and count > slice_rule.max:
                self.add("error", "structure", f"{label}: max allowed = {slice_rule.max}, but found {count}", where)

    def _in_slice(self, rule: ElementRule, slice_rule: ElementRule, value: Any, type_code: str) -> bool:
        for discriminator in rule.discriminators:
            path = discriminator.path
            if discriminator.kind == "type":
                if type_code not in slice_rule.type_codes:
                    return False
                continue
            if discriminator.kind == "exists" or discriminator.kind == "profile":
                continue
            if path == "$this":
                if slice_rule.fixed is not None and value != slice_rule.fixed:
                    return False
                if slice_rule.pattern is not None and not _matches_pattern(slice_rule.pattern, value):
                    return False
                continue
            if path == "url" and slice_rule.extension_url:
                if not isinstance(value, dict) or value.get("url") != slice_rule.extension_url:
                    return False
                continue
            expected_rule = next((c for c in slice_rule.children if c.name == path), None)
            if expected_rule is None:
                return False
            actual = value.get(path) if isinstance(value, dict) else None
            if expected_rule.fixed is not None and actual != expected_rule.fixed:
                return False
            if expected_rule.pattern is not None and not _matches_pattern(expected_rule.pattern, actual):
                return False
        return True

    # -- extensions anywhere in the resource ------------------------------------------------------------
    def extensions(self, obj: Any, element_path: str, location: str) -> None:
        if isinstance(obj, list):
            for i, item in enumerate(obj):
                self.extensions(item, element_path, f"{location}[{i}]")
            return
        if not isinstance(obj, dict):
            return
        for key, value in obj.items():
            if key in ("extension", "modifierExtension") and isinstance(value, list):
                for i, extension in enumerate(value):
                    self.extension(extension, element_path, f"{location}.{key}[{i}]")
                continue
            if key in ("resourceType", "contained") or not isinstance(value, (dict, list)):
                continue
            name = key[1:] if key.startswith("_") else key
            self.extensions(value, f"{element_path}.{name}", f"{location}.{name}")

    def extension(self, extension: Any, element_path: str, location: str) -> None:
        url = extension.get("url") if isinstance(extension, dict) else None
        if not isinstance(url, str):
            return
        validator = self.validator
        if not url.startswith(validator.canonical_prefix):
            self.extensions(extension, f"{element_path}.extension", location)
            return
        definition = validator.structure_definitions.get(url)
        if definition is None or definition.get("type") != "Extension":
            self.add("error", "extension", f"Unknown extension {url}", location)
            return
        contexts = [c.get("expression") for c in definition.get("context", [])]
        if contexts and element_path not in contexts and not (_RESOURCE_CONTEXTS & set(contexts)):
            self.add(
                "error",
                "extension",
                f"Extension {url} is not allowed on {element_path} (contexts: {', '.join(contexts)})",
                location,
            )
        rule = validator.compiled(url)
        self.children(rule, extension, location)
        for invariant in rule.invariants:
            self.invariant(invariant, extension, location)


class ProfileValidator:
    """Validates resource dicts against StructureDefinitions by canonical URL; thread-safe, compiles lazily."""

    def __init__(self, structure_definitions: Iterable[dict], terminology: Terminology, canonical: str):
        self.structure_definitions = {sd["url"]: sd for sd in structure_definitions}
        self.terminology = terminology
        self.canonical_prefix = canonical.rstrip("/") + "/"
        self._compiled: dict[str, ElementRule] = {}
        self._lock = threading.Lock()
        self._compiler = RuleCompiler(self._resolve_type, self._binding_checked)

    def _resolve_type(self, profile_url: str) -> str | None:
        if profile_url.startswith(CORE_PREFIX + "StructureDefinition/"):
            return profile_url.rsplit("/", 1)[-1]
        sd = self.structure_definitions.get(profile_url.split("|", 1)[0])
        return sd.get("type") if sd else None

    def _binding_checked(self, strength: str, value_set: str) -> bool:
        if strength == "required":
            return self.terminology.expansion(value_set) is not None
        if strength in ("extensible", "preferred"):
            return value_set.startswith(self.canonical_prefix) and self.terminology.expansion(value_set) is not None
        return False

    def compiled(self, url: str) -> ElementRule:
        rule = self._compiled.get(url)
        if rule is None:
            with self._lock:
                rule = self._compiled.get(url)
                if rule is None:
                    rule = self._compiler.compile(self.structure_definitions[url])
                    self._compiled[url] = rule
        return rule

    def compile_all(self) -> None:
        for url in self.structure_definitions:
            self.compiled(url)

    def knows(self, url: str) -> bool:
        return url.split("|", 1)[0] in self.structure_definitions

    def validate(self, resource: dict, profiles: Iterable[str] | None = None) -> list[dict]:
        """Issues for ``resource`` against ``profiles`` (default: the IG profiles it claims in meta.profile)."""
        resource_type = resource.get("resourceType", "")
        if profiles is None:
            profiles = [p for p in (resource.get("meta") or {}).get("profile", []) if p.startswith(self.canonical_prefix)]
        run = _Run(self, resource)
        for profile in profiles:
            url = profile.split("|", 1)[0]
            sd = self.structure_definitions.get(url)
            if sd is None or sd.get("kind") != "resource":
                run.add("error", "not-supported", f"Profile {url} is not known to this server", f"{resource_type}.meta.profile")
                continue
            if sd.get("type") != resource_type:
                run.add("error", "invalid", f"Profile {url} is for {sd.get('type')}, not {resource_type}", resource_type)
                continue
            rule = self.compiled(url)
            for invariant in rule.invariants:
                run.invariant(invariant, resource, resource_type)
            run.children(rule, resource, resource_type)
        run.extensions(resource, resource_type, resource_type)
        return _unique(run.issues)


def _unique(issues: list[dict]) -> list[dict]:
    seen = set()
    result = []
    for entry in issues:
        key = (entry["severity"], entry["code"], entry["diagnostics"], tuple(entry.get("expression", ())))
        if key not in seen:
            seen.add(key)
            result.append(entry)
    return result
