"""The consortium access policy: which member may read and write which resources, as data.

A deployment's policy is a JSON file (``policy.json`` here is the default) whose rules are
FHIR search expressions with placeholders for the caller's organisation. They are compiled,
per caller and resource type, into search conditions of ``fhir_server.search.query``, so
one definition serves every enforcement point:

* searches AND the restriction into the parsed query itself (:func:`restrict_query`), so
  totals, paging, chained parameters and ``_has`` never count or match what the caller may
  not see, and ``_include``/``_revinclude`` results are re-checked (:func:`visible_ids`);
* reads, vreads and instance history ask :func:`visible_ids` for the one id (a forbidden
  resource answers 404, as an unknown one does, so existence is not confirmed);
* writes are checked before (the current version must be writable) and after (the new
  version must still be writable) inside the write's transaction.

Platform administrators bypass the policy. ``None`` from :func:`restriction` means
unrestricted; an empty ``AnyOf`` matches nothing.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..errors import FhirError
from ..repository import valid_id
from .context import Caller

_MISSING = object()

DEFAULT_POLICY = Path(__file__).with_name("policy.json")
#: how deep ``{visible}``/``{party}`` references may nest before a rule is treated as matching nothing
MAX_DEPTH = 6
NOTHING_TYPES = ()


class PolicyError(ValueError):
    """The policy file is malformed or names a search parameter that does not exist."""


@dataclass(frozen=True)
class TypeRules:
    read: tuple  # rules: each a tuple of expressions that must all hold
    write: tuple


def _rules(value: object, where: str) -> tuple:
    if not isinstance(value, list):
        raise PolicyError(f"{where} must be a list of rules")
    out = []
    for rule in value:
        if isinstance(rule, str):
            rule = [rule]
        if not isinstance(rule, list) or not rule or not all(isinstance(e, str) and e for e in rule):
            raise PolicyError(f"{where}: a rule is an expression or a non-empty list of expressions")
        out.append(tuple(rule))
    return tuple(out)


class Policy:
    def __init__(self, data: dict, registry=None):
        if registry is None:
            from ..search.registry import default_registry

            registry = default_registry()
        self.registry = registry
        if not isinstance(data, dict):
            raise PolicyError("the policy must be a JSON object")
        self.admin_only = frozenset(data.get("admin_only", []))
        default = data.get("default", {"read": ["*"], "write": ["*"]})
        self.default = TypeRules(_rules(default.get("read", []), "default.read"),
                                 _rules(default.get("write", []), "default.write"))
        self.types: dict[str, TypeRules] = {}
        for resource_type, spec in (data.get("types") or {}).items():
            if not isinstance(spec, dict):
                raise PolicyError(f"types.{resource_type} must be an object")
            self.types[resource_type] = TypeRules(_rules(spec.get("read", []), f"{resource_type}.read"),
                                                  _rules(spec.get("write", []), f"{resource_type}.write"))
        self._cache: dict[tuple, object] = {}
        self._lock = threading.Lock()
        self._extraction = None
        #: (organisation, role, type, mode) → the _QuickPlan of that restriction, None when unrestricted
        self._plans: dict[tuple, object] = {}
        self._check()

    @classmethod
    def load(cls, path: str | Path | None = None, registry=None) -> "Policy":
        path = Path(path) if path else DEFAULT_POLICY
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PolicyError(f"{path}: {exc}") from None
        return cls(data, registry)

    def _check(self) -> None:
        """Compile every rule once for a sample caller, so a broken policy fails at start-up."""
        sample = Caller("policy-check", "Organization/policy-check", "PractitionerRole/policy-check")
        for resource_type in self.types:
            for mode in ("read", "write"):
                self.restriction(sample, resource_type, mode)

    def rules(self, resource_type: str) -> TypeRules:
        return self.types.get(resource_type, self.default)

    def is_restricted(self, caller: Caller | None, resource_type: str) -> bool:
        """Does reading ``resource_type`` depend on who the caller is?"""
        if caller is None or caller.admin:
            return False
        return resource_type in self.admin_only or self.restriction(caller, resource_type, "read") is not None

    def quick_plan(self, caller: Caller, resource_type: str, mode: str = "read"):
        """What :func:`quick_visible` compares for the caller's restriction on ``resource_type`` (None: not
        restricted), one dict read per check by id once made."""
        key = (caller.organization, caller.practitioner_role, resource_type, mode)
        plan = self._plans.get(key, _MISSING)
        if plan is not _MISSING:
            return plan
        condition = self.restriction(caller, resource_type, mode)
        plan = None if condition is None else _plan_of(self, condition)
        with self._lock:
            if len(self._plans) > 20000:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    # ---- rules → search conditions ---------------------------------------------------------------

    def restriction(self, caller: Caller, resource_type: str, mode: str = "read", depth: int = 0):
        """The condition a ``resource_type`` resource must meet for ``caller`` (None: no restriction)."""
        key = (caller.organization, caller.practitioner_role, resource_type, mode, depth)
        condition = self._cache.get(key, _MISSING)  # a dict read needs no lock; filling it does
        if condition is not _MISSING:
            return condition
        condition = self._build(caller, resource_type, mode, depth)
        with self._lock:
            if len(self._cache) > 20000:
                self._cache.clear()
            self._cache[key] = condition
        return condition

    @staticmethod
    def tiers(condition) -> list:
        """``condition`` split into a cheap part (plain clauses, one-hop chains) and the rest, both AnyOf."""
        from ..search.query import AnyOf, Chain, Clause

        if not isinstance(condition, AnyOf):
            return [condition]
        cheap, rest = [], []
        for alternative in condition.conditions:
            simple = isinstance(alternative, Clause) or (
                isinstance(alternative, Chain) and all(isinstance(c, Clause) for _, c in alternative.targets))
            (cheap if simple else rest).append(alternative)
        return [AnyOf(tuple(part)) for part in (cheap, rest) if part] or [condition]

    def _build(self, caller: Caller, resource_type: str, mode: str, depth: int):
        from ..search.query import AllOf, AnyOf

        if resource_type in self.admin_only:
            return AnyOf(())
        rules = self.rules(resource_type)
        chosen = rules.write if mode == "write" else rules.write + rules.read
        alternatives = []
        for rule in chosen:
            parts = []
            for expression in rule:
                if expression == "*":
                    continue
                parts.append(self._expression(caller, resource_type, expression, depth))
            if not parts:
                return None  # this rule matches every resource
            alternatives.append(parts[0] if len(parts) == 1 else AllOf(tuple(parts)))
        return AnyOf(tuple(alternatives))

    def _expression(self, caller: Caller, resource_type: str, expression: str, depth: int):
        from ..search.query import AnyOf, Chain, Has, InvalidParameter, Parser

        name, sep, value = expression.partition("=")
        if not sep:
            raise PolicyError(f"{resource_type}: '{expression}' is not name=value")
        if value in ("{visible}", "{party}"):
            mode = "read" if value == "{visible}" else "write"
            if name.startswith("_has:"):
                pieces = name.split(":")
                if len(pieces) != 3:
                    raise PolicyError(f"{resource_type}: '{expression}': use _has:Type:reference={value}")
                source, code = pieces[1], pieces[2]
                param = self.registry.get(source, code)
                if param is None or param.type != "reference":
                    raise PolicyError(f"{resource_type}: {source}.{code} is not a reference parameter")
                inner = self._nested(caller, source, mode, depth)
                return AnyOf(()) if inner is False else Has(source, param, inner) if inner is not None \
                    else Has(source, param, _exists(self.registry, source))
            code, _, target = name.partition(":")
            param = self.registry.get(resource_type, code)
            if param is None or param.type != "reference" or not target:
                raise PolicyError(f"{resource_type}: '{expression}': use reference:Type={value}")
            inner = self._nested(caller, target, mode, depth)
            if inner is False:
                return AnyOf(())
            return Chain(param, ((target, inner if inner is not None else _exists(self.registry, target)),))
        value = (value.replace("{org}", caller.organization).replace("{org_id}", caller.organization_id)
                 .replace("{role}", caller.practitioner_role or "PractitionerRole/\x00none"))
        if "{" in value and "}" in value:
            raise PolicyError(f"{resource_type}: '{expression}': unknown placeholder (use {{org}}, {{org_id}}, {{role}}, "
                              "{visible} or {party})")
        try:
            return Parser(self.registry).condition(resource_type, name, value)
        except InvalidParameter as exc:
            raise PolicyError(f"{resource_type}: '{expression}': {exc}") from None

    def _nested(self, caller: Caller, resource_type: str, mode: str, depth: int):
        if depth >= MAX_DEPTH:
            return False
        return self.restriction(caller, resource_type, mode, depth + 1)


def _exists(registry, resource_type: str):
    """A condition every current ``resource_type`` resource meets (``_id:missing=false``)."""
    from ..search.query import Clause, MissingValue

    param = registry.get(resource_type, "_lastUpdated")
    return Clause(param, "missing", (MissingValue(False),), param.key)


# ---- enforcement helpers ----------------------------------------------------------------------------

def visible_ids(policy: Policy, session, caller: Caller | None, resource_type: str, ids, mode: str = "read") -> set:
    """The subset of ``ids`` (current, not deleted) of ``resource_type`` the caller may read (or write)."""
    from ..search.query import Parser, SearchQuery

    ids = [i for i in dict.fromkeys(ids) if valid_id(i)]
    if caller is None or caller.admin:
        return set(ids)
    if resource_type in policy.admin_only:
        return set()
    condition = policy.restriction(caller, resource_type, mode)
    if condition is None or not ids:
        return set(ids)
    found: set = set()
    # cheap alternatives first (a direct party reference answers most checks), the nested ones only for the rest
    for tier in policy.tiers(condition):
        pending = [i for i in ids if i not in found]
        for start in range(0, len(pending), 200):
            chunk = pending[start:start + 200]
            query = SearchQuery((resource_type,), total="none", limit_all=len(chunk))
            query.conditions = [Parser(policy.registry).condition(resource_type, "_id", ",".join(chunk)), tier]
            found.update(record.id for record in session.search(query).matches)
        if len(found) == len(ids):
            break
    return found


@dataclass(frozen=True)
class _QuickPlan:
    """What :func:`quick_visible` looks at for one restriction: the reference index rows (key, type, id)
    that admit a resource by themselves, the one-hop chains over a plain reference clause, and the
    parameter keys whose rows both need."""

    admits: frozenset
    chains: tuple  # (reference key on the resource, target type, rows admitting the target, its key)
    keys: frozenset


def _admitting_rows(clause) -> frozenset:
    from ..search.query import ReferenceValue

    return frozenset((clause.key, v.type, v.id) for v in clause.values
                     if isinstance(v, ReferenceValue) and v.type and v.id)


def _plan_of(policy: Policy, condition) -> _QuickPlan:
    from ..search.query import Chain, Clause, ReferenceValue

    admits, chains, keys = set(), [], set()
    for alternative in policy.tiers(condition)[0].conditions if hasattr(condition, "conditions") else ():
        if isinstance(alternative, Clause) and alternative.modifier is None and alternative.param.type == "reference":
            admits |= _admitting_rows(alternative)
            keys.add(alternative.param.key)
        elif isinstance(alternative, Chain) and len(alternative.targets) == 1:
            target, inner = alternative.targets[0]
            if (isinstance(inner, Clause) and inner.modifier is None and inner.param.type == "reference"
                    and all(isinstance(v, ReferenceValue) for v in inner.values)):
                chains.append((alternative.param.key, target, _admitting_rows(inner), frozenset((inner.param.key,))))
                keys.add(alternative.param.key)
    return _QuickPlan(frozenset(admits), tuple(chains), frozenset(keys))


def quick_visible(policy: Policy, session, caller: Caller, record, mode: str = "read",
                  resource: dict | None = None, indexed: bool | None = None) -> bool:
    """True when a plain reference rule (``performer={org}``, ``requester:PractitionerRole.organization={org}``)
    already admits ``record``, the current version in ``session`` (``resource``: its parsed body, when the
    caller has it); False means "not decided here" (run the query).

    A shortcut for checks by id: it compares the same index rows the search would. It asks the stored search
    index when the store can (``references_any``, also for a version just written in the session: its rows
    are written with it; ``indexed``: the index's answer for the plan's rows, when the caller read it with
    the record, as ``Guard.check_visible_in`` does); otherwise it extracts them from the body with the same
    extraction, only for the parameters the rules name. Either way it never admits what the query would
    refuse.
    """
    if indexed:  # the caller's read found one of the plan's rows in the index: nothing more to ask
        return True
    plan = policy.quick_plan(caller, record.resource_type, mode)
    if plan is None:
        return True
    if not plan.keys:
        return False
    if indexed is None and hasattr(session, "references_any"):
        indexed = session.references_any(record.resource_type, record.id, plan.admits)
    if indexed:
        return True
    if indexed is not None and not plan.chains:
        return False
    rows = _reference_rows(policy, record.resource_type,
                           resource if resource is not None else _parsed(record.body), plan.keys)
    if indexed is None and any(row[:3] in plan.admits for row in rows):
        return True
    # following a reference to another resource costs a read
    for chain_key, target, admits, target_keys in plan.chains:
        for key, ttype, tid, *_ in rows:
            if key != chain_key or ttype != target or not tid:
                continue
            linked = session.read(target, tid)
            if linked is None or linked.deleted:
                continue
            if any(row[:3] in admits for row in _reference_rows(policy, target, _parsed(linked.body),
                                                                target_keys)):
                return True
    return False


def _parsed(body: bytes) -> dict:
    """A stored body for comparing references: plain orjson, without the exact-decimal pass (the lossless
    parser only for what orjson refuses, such as an escaped lone surrogate)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        from ..formats import json as fjson

        return fjson.loads(body)


def _reference_rows(policy: Policy, resource_type: str, resource: dict, keys: frozenset) -> list:
    if policy._extraction is None:
        from ..search.extract import Extraction

        policy._extraction = Extraction(policy.registry)
    return policy._extraction.references(resource_type, resource, keys)


def restrict_query(policy: Policy, caller: Caller | None, query) -> None:
    """AND the caller's restrictions into a parsed search, including inside chains and ``_has``."""
    if caller is None or caller.admin:
        return
    types = query.covered_types
    restricted = [t for t in types if policy.is_restricted(caller, t)]
    if len(types) != 1 and restricted:
        raise FhirError(403, "searching several resource types at once is not available to consortium members "
                             f"when it includes {', '.join(sorted(restricted)[:5])}; search one type at a time",
                        "forbidden")
    query.conditions = [_rewrite(policy, caller, c) for c in query.conditions]
    if len(types) == 1:
        for resource_type in types:
            condition = policy.restriction(caller, resource_type, "read")
            if condition is not None:
                query.conditions.append(condition)


def _rewrite(policy: Policy, caller: Caller, condition):
    from ..search.query import AllOf, AnyOf, Chain, Has

    if isinstance(condition, Chain):
        targets = []
        for target, inner in condition.targets:
            _require_search_scope(caller, target)
            inner = _rewrite(policy, caller, inner)
            limit = policy.restriction(caller, target, "read")
            targets.append((target, inner if limit is None else AllOf((inner, limit))))
        return Chain(condition.param, tuple(targets))
    if isinstance(condition, Has):
        _require_search_scope(caller, condition.source_type)
        inner = _rewrite(policy, caller, condition.condition)
        limit = policy.restriction(caller, condition.source_type, "read")
        return Has(condition.source_type, condition.param, inner if limit is None else AllOf((inner, limit)))
    if isinstance(condition, AnyOf):
        return AnyOf(tuple(_rewrite(policy, caller, c) for c in condition.conditions))
    if isinstance(condition, AllOf):
        return AllOf(tuple(_rewrite(policy, caller, c) for c in condition.conditions))
    return condition


def _require_search_scope(caller: Caller, resource_type: str) -> None:
    if not caller.can("s", resource_type):
        raise FhirError(403, f"the granted scopes do not allow searching {resource_type} (chained or _has "
                             "parameters search the resources they pass through)", "forbidden")


def search_restriction(caller: Caller | None, resource_type: str, policy: Policy | None = None):
    """The extra condition to AND into a search of ``resource_type`` for ``caller`` (None: none)."""
    from .context import current_guard

    if caller is None or caller.admin:
        return None
    if policy is None:
        guard = current_guard()
        if guard is None:
            return None
        policy = guard.policy
    return policy.restriction(caller, resource_type, "read")
