"""Compiles a StructureDefinition snapshot into a tree of element rules, once per profile.

Only what can fail is kept: elements with a cardinality, fixed/pattern value, binding, reference
target, slicing, extension profile or IG invariant (and their ancestors). Base invariants of the core
specification (ele-1, dom-*, ...) are left to the structural check by the resource models; invariants the
IG adds are compiled once (``validation/fhirpath.py``, fhirpathpy behind it). The tree is then walked
over plain dicts, so validation costs a few dict look-ups per constrained element.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from fhir_server.validation.fhirpath import compile_invariant

CORE_PREFIX = "http://hl7.org/fhir/"
_CODED_TYPES = frozenset(("code", "Coding", "CodeableConcept"))


@dataclass
class Invariant:
    key: str
    severity: str
    human: str
    expression: str
    evaluate: Callable[[Any], list]


@dataclass
class Discriminator:
    kind: str  # value | pattern | type | exists
    path: str


@dataclass
class ElementRule:
    id: str
    path: str
    #: JSON property name → FHIR type code ('valueCoding' → 'Coding'); one entry unless a choice
    json_names: dict[str, str]
    #: the FHIRPath name of the element (``value`` for ``value[x]``)
    name: str
    choice: bool
    array: bool
    min: int
    max: int | None
    fixed: Any = None
    pattern: Any = None
    binding: tuple[str, str] | None = None
    type_codes: frozenset[str] = frozenset()
    #: allowed referenced resource types (None: any)
    target_types: frozenset[str] | None = None
    #: canonical URL of the extension definition, for extension slices
    extension_url: str | None = None
    slice_name: str | None = None
    children: list["ElementRule"] = field(default_factory=list)
    discriminators: list[Discriminator] = field(default_factory=list)
    slicing_rules: str = "open"
    slices: list["ElementRule"] = field(default_factory=list)
    invariants: list[Invariant] = field(default_factory=list)
    #: a choice element whose types the profile narrows (otherwise the models check the types)
    narrowed_choice: bool = False

    def __post_init__(self) -> None:
        (self.single_name, self.single_type), *_ = self.json_names.items() or [("", "")]


def _max(value: str | None) -> int | None:
    return None if value in (None, "*") else int(value)


def _prefixed(element: dict, prefix: str) -> Any:
    for key, value in element.items():
        if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper():
            return value
    return None


def _type_code(type_entry: dict) -> str:
    code = type_entry["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in type_entry.get("extension", []):
            if ext.get("url", "").endswith("structuredefinition-fhir-type"):
                return ext.get("valueUrl") or ext.get("valueUri") or "string"
        return "string"
    return code


class RuleCompiler:
    """Builds ElementRules; ``resolve_type(url)`` gives the resource type a target profile constrains."""

    def __init__(self, resolve_type: Callable[[str], str | None], binding_checked: Callable[[str, str], bool]):
        self.resolve_type = resolve_type
        self.binding_checked = binding_checked

    def compile(self, sd: dict) -> ElementRule:
        elements = sd["snapshot"]["element"]
        constrained = {e["id"] for e in sd.get("differential", {}).get("element", [])}
        rules: dict[str, ElementRule] = {}
        kept: dict[str, bool] = {}
        root: ElementRule | None = None
        order: list[tuple[ElementRule, dict]] = []
        for element in elements:
            rule = self._rule(element, is_root=root is None)
            rule.narrowed_choice = rule.choice and element["id"] in constrained
            rules[element["id"]] = rule
            order.append((rule, element))
            if root is None:
                root = rule
        # wire children and slices, bottom-up relevance
        for rule, element in reversed(order[1:]):
            element_id = element["id"]
            parent_id, _, last = element_id.rpartition(".")
            relevant = kept.get(element_id, False) or self._relevant(rule, element)
            if not relevant:
                continue
            if ":" in last:
                sliced_id = f"{parent_id}.{last.split(':', 1)[0]}"
                sliced = rules[sliced_id]
                sliced.slices.insert(0, rule)
                kept[sliced_id] = True
            else:
                rules[parent_id].children.insert(0, rule)
                kept[parent_id] = True
        for rule, element in order:
            slicing = element.get("slicing")
            if slicing and rule.slices:
                rule.discriminators = [Discriminator(d["type"], d["path"]) for d in slicing.get("discriminator", [])]
                rule.slicing_rules = slicing.get("rules", "open")
        assert root is not None
        return root

    def _relevant(self, rule: ElementRule, element: dict) -> bool:
        base = element.get("base", {})
        return bool(
            rule.min > 0
            or (rule.max is not None and rule.max != _max(base.get("max")))
            or rule.fixed is not None
            or rule.pattern is not None
            or rule.binding
            or rule.target_types is not None
            or rule.extension_url
            or rule.invariants
            or rule.slices
            or rule.children
            or rule.narrowed_choice
        )

    def _rule(self, element: dict, is_root: bool) -> ElementRule:
        path = element["path"]
        last = path.rsplit(".", 1)[-1]
        choice = last.endswith("[x]")
        name = last[:-3] if choice else last
        types = element.get("type", [])
        codes = [_type_code(t) for t in types]
        if choice:
            json_names = {name + code[0].upper() + code[1:]: code for code in codes}
        else:
            json_names = {name: codes[0] if codes else "BackboneElement"}
        base_max = element.get("base", {}).get("max", element.get("max"))
        rule = ElementRule(
            id=element["id"],
            path=path,
            json_names=json_names,
            name=name,
            choice=choice,
            array=base_max != "1" and not is_root,
            min=element.get("min", 0),
            max=_max(element.get("max")),
            fixed=_prefixed(element, "fixed"),
            pattern=_prefixed(element, "pattern"),
            type_codes=frozenset(codes),
            slice_name=element.get("sliceName"),
        )
        bound = element.get("binding")
        if bound and bound.get("valueSet") and _CODED_TYPES & rule.type_codes:
            value_set = bound["valueSet"].split("|", 1)[0]
            if self.binding_checked(bound["strength"], value_set):
                rule.binding = (bound["strength"], value_set)
        targets: set[str] = set()
        for type_entry in types:
            if type_entry["code"] == "Reference":
                for profile in type_entry.get("targetProfile", []):
                    resolved = self.resolve_type(profile)
                    targets.add(resolved or "Resource")
            if type_entry["code"] == "Extension" and type_entry.get("profile"):
                rule.extension_url = type_entry["profile"][0]
        if targets and "Resource" not in targets:
            rule.target_types = frozenset(targets)
        for constraint in element.get("constraint", []):
            # only the invariants a profile adds (its generator stamps their source); base ones are structural
            source = constraint.get("source", "")
            if not source or source.startswith(CORE_PREFIX) or not constraint.get("expression"):
                continue
            rule.invariants.append(
                Invariant(
                    constraint["key"],
                    constraint.get("severity", "error"),
                    constraint.get("human", ""),
                    constraint["expression"],
                    compile_invariant(constraint["expression"]),
                )
            )
        return rule
