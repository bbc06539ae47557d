"""The regional referral rules engine: rule sets are data, evaluators are small functions.

A rule set (JSON or YAML under ``fhir_server/referral/rule_sets/``, validated against
``rule-set.schema.json`` when loaded) carries the region's numbers in ``parameters`` and a list of
rules, each with an id, the evaluator it uses (``check``), a severity and a message in Chinese and
English. A regional set ``extends`` the national one: parameters are merged key by key, rules
are replaced by id (``"enabled": false`` switches one off). The evaluators below only read the
parameters; what counts as a base-level disease, a chronic condition or a penalty lives in data.

An error-severity rule that fires rejects the write (422); a warning is returned beside it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import jsonschema

from fhir_server.ig.canonical import CANONICAL

from . import vocabulary as v
from .facts import Facts, local_reference

RULES_DIR = Path(__file__).resolve().parent / "rule_sets"
SCHEMA_PATH = RULES_DIR / "rule-set.schema.json"
DEFAULT_RULE_SET = "national"


class RuleSetError(ValueError):
    """A rule-set file that does not match the schema or names an unknown evaluator."""


@dataclass
class Rule:
    id: str
    check: str
    severity: str
    message: dict
    params: dict = field(default_factory=dict)


@dataclass
class RuleSet:
    id: str
    title: dict
    match: dict
    parameters: dict
    rules: list[Rule]

    @property
    def system(self) -> str:
        return f"{CANONICAL}/rules/{self.id}"

    def param(self, *path: str, default=None):
        node = self.parameters
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


# ---- loading ---------------------------------------------------------------------------------


def _read(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_rule_sets(directories: Iterable[Path] = (RULES_DIR,)) -> dict[str, RuleSet]:
    """Every rule set in the directories, validated and with ``extends`` resolved."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    raw: dict[str, dict] = {}
    for directory in directories:
        for path in sorted(Path(directory).iterdir()):
            if path.suffix not in (".json", ".yaml", ".yml") or path.name == SCHEMA_PATH.name:
                continue
            document = _read(path)
            errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
            if errors:
                where = "/".join(str(p) for p in errors[0].path) or "(root)"
                raise RuleSetError(f"{path.name}: {where}: {errors[0].message}")
            raw[document["id"]] = document
    resolved: dict[str, RuleSet] = {}

    def resolve(set_id: str, trail: tuple[str, ...] = ()) -> dict:
        if set_id in trail:
            raise RuleSetError(f"rule set '{set_id}' extends itself through {' → '.join(trail)}")
        if set_id not in raw:
            raise RuleSetError(f"rule set '{trail[-1] if trail else set_id}' extends unknown '{set_id}'")
        document = raw[set_id]
        parent_id = document.get("extends")
        if not parent_id:
            return document
        parent = resolve(parent_id, trail + (set_id,))
        rules = {r["id"]: r for r in parent.get("rules", [])}
        for rule in document.get("rules", []):
            rules[rule["id"]] = {**rules.get(rule["id"], {}), **rule}
        return {**document, "parameters": _merge(parent.get("parameters", {}), document.get("parameters", {})),
                "rules": list(rules.values())}

    for set_id in raw:
        document = resolve(set_id)
        rules = []
        for entry in document.get("rules", []):
            if entry.get("enabled", True) is False:
                continue
            missing = [key for key in ("check", "severity", "message") if key not in entry]
            if missing:
                raise RuleSetError(f"rule set '{set_id}', rule '{entry.get('id')}': missing {', '.join(missing)}")
            if entry.get("check") not in EVALUATORS:
                raise RuleSetError(f"rule set '{set_id}', rule '{entry.get('id')}': unknown check '{entry.get('check')}'")
            rules.append(Rule(entry["id"], entry["check"], entry["severity"], entry["message"], entry.get("params", {})))
        resolved[set_id] = RuleSet(set_id, document.get("title", {}), document.get("match", {}),
                                   document.get("parameters", {}), rules)
    if DEFAULT_RULE_SET not in resolved:
        raise RuleSetError(f"no '{DEFAULT_RULE_SET}' rule set found")
    return resolved


class RuleBook:
    """The loaded rule sets and the choice of the one that governs an organisation."""

    def __init__(self, rule_sets: dict[str, RuleSet], default: str = DEFAULT_RULE_SET):
        self.rule_sets = rule_sets
        self.default = rule_sets[default]

    def for_region(self, code: str | None) -> RuleSet:
        """The set governing a GB/T 2260 region code (matched at province, then city level)."""
        if not code or len(code) < 2:
            return self.default
        return self.for_organization({"address": [{"state": code[:2] + "0000", "city": code[:4] + "00"}]})

    def for_organization(self, org: dict | None) -> RuleSet:
        """The regional set whose ``match`` names the organisation's province/city, else the default."""
        address = Facts.address(org)
        places = {address.get("state"), address.get("city"), address.get("district")} - {None}
        for extension in address.get("extension") or []:
            for code in v.codes(v.value(extension)):
                places.add(code)
        best = None
        for rule_set in self.rule_sets.values():
            names = set(rule_set.match.get("state", [])) | set(rule_set.match.get("city", []))
            if names & places:
                # a city-level match beats a province-level one
                if best is None or set(rule_set.match.get("city", [])) & places:
                    best = rule_set
        return best or self.default


# ---- evaluation --------------------------------------------------------------------------------


class Context:
    """One write being judged: the resource, its previous version, the facts and the rule set."""

    def __init__(self, facts: Facts, resource_type: str, resource: dict, previous: dict | None, rule_set: RuleSet,
                 now: datetime | None = None):
        self.facts, self.resource_type, self.resource, self.previous = facts, resource_type, resource, previous
        self.rule_set = rule_set
        self.now = now or datetime.now(timezone.utc)
        #: references a rule needed but could not read (may still come later in the same transaction)
        self.missing: set[str] = set()

    def get(self, reference: object) -> dict | None:
        found = self.facts.get(reference)
        ref = local_reference(reference)
        if found is None and ref:
            self.missing.add(ref)
        return found

    def organization(self, reference: object) -> tuple[str | None, dict | None]:
        ref = self.facts.organization_ref(reference)
        if ref is None and local_reference(reference):
            self.missing.add(local_reference(reference))
        return ref, (self.get(ref) if ref else None)

    def tier(self, org: dict | None) -> int | None:
        """The organisation's rank in the referral hierarchy (village 1 … level-3 hospital 4 by default)."""
        tiers = self.rule_set.param("tiers", default={})
        institution = Facts.institution_type(org)
        if institution and institution in tiers.get("institutionType", {}):
            return tiers["institutionType"][institution]
        level = Facts.facility_level(org)
        if level and level in tiers.get("facilityLevel", {}):
            return tiers["facilityLevel"][level]
        return None

    def base_list(self, up_to_tier: int) -> set[str]:
        """Diseases the tiers up to ``up_to_tier`` should treat (first-contact lists)."""
        lists = self.rule_set.param("firstContact", default={}) or {}
        found: set[str] = set()
        for tier, entries in lists.items():
            if int(tier) <= up_to_tier:
                found.update(entries)
        return found


#: evaluator(context, rule) -> list of details when the rule fires (empty/None: it does not)
Evaluator = Callable[[Context, Rule], "list[str] | None"]
EVALUATORS: dict[str, tuple[tuple[str, ...], Evaluator]] = {}
#: per resource type, the preconditions of its evaluators (None in the list: one has none, it always runs)
_PRECONDITIONS: dict[str, list] = {}


def evaluator(name: str, *types: str, only: Callable[[str, dict], bool] | None = None):
    """Register an evaluator for ``types``. ``only(resource_type, resource)``, when given, is a cheap test of
    the written resource alone that must hold for the evaluator to fire at all: when no evaluator of a type
    can fire, :func:`evaluate` skips finding the governing organisation and its rule set (a plain lab order
    is not a referral)."""
    def register(fn: Evaluator) -> Evaluator:
        EVALUATORS[name] = (types, fn)
        for resource_type in types:
            preconditions = _PRECONDITIONS.setdefault(resource_type, [])
            if only not in preconditions:  # most share one (an active referral): test it once per write
                preconditions.append(only)
        return fn

    return register


def may_fire(resource_type: str, resource: dict) -> bool:
    """False when no rule of any rule set can fire for this resource (every evaluator's precondition fails)."""
    return any(only is None or only(resource_type, resource) for only in _PRECONDITIONS.get(resource_type, ()))


def code_matches(code: str, listed: Iterable[str]) -> bool:
    """ICD codes match their category: 'E11.9' is on a list naming 'E11'."""
    return any(code == item or code.startswith(item + ".") for item in listed)


def reason_codes(resource: dict) -> list[str]:
    found: list[str] = []
    for concept in resource.get("reasonCode") or []:
        found.extend(v.codes(concept))
    return found


def direction(request: dict) -> str | None:
    found = v.codes(v.value(v.extension(request, v.DIRECTION)))
    return found[0] if found else None


def justification(request: dict) -> str | None:
    text = v.value(v.extension(request, v.JUSTIFICATION))
    return text.strip() if isinstance(text, str) and text.strip() else None


def active_referral(resource_type: str, resource: dict) -> bool:
    """An active referral ServiceRequest: what every ServiceRequest rule is about."""
    return resource_type == "ServiceRequest" and resource.get("status") == "active" \
        and v.is_referral_request(resource)


def _referral_active(ctx: Context) -> bool:
    return active_referral(ctx.resource_type, ctx.resource)


def _sides(ctx: Context):
    request = ctx.resource
    referrer_ref, referrer = ctx.organization(request.get("requester"))
    performers = request.get("performer") or []
    receiver_ref, receiver = ctx.organization(performers[0]) if performers else (None, None)
    return referrer_ref, referrer, receiver_ref, receiver


@evaluator("consent", "ServiceRequest", only=active_referral)
def check_consent(ctx: Context, rule: Rule):
    if not _referral_active(ctx):
        return None
    request = ctx.resource
    exemption = v.extension(request, v.CONSENT_EXEMPTION)
    if exemption is not None:
        reasons = v.codes(v.sub_value(exemption, "reason"))
        allowed = rule.params.get("exemptionReasons")
        if not reasons:
            return ["the consent exemption carries no reason"]
        if allowed and not set(reasons) & set(allowed):
            return [f"exemption reason {reasons[0]} is not accepted here"]
        return None
    consent_ref = v.value(v.extension(request, v.CONSENT))
    if not consent_ref:
        return ["no Consent is referenced and no exemption is given"]
    consent = ctx.get(consent_ref)
    if consent is None or consent.get("resourceType") != "Consent":
        return [f"the Consent {local_reference(consent_ref)} is not known"]
    if consent.get("status") != "active":
        return [f"the Consent is {consent.get('status')}, not active"]
    if local_reference(consent.get("patient")) != local_reference(request.get("subject")):
        return ["the Consent is for another patient"]
    return None


@evaluator("direction-levels", "ServiceRequest", only=active_referral)
def check_direction(ctx: Context, rule: Rule):
    if not _referral_active(ctx):
        return None
    where = direction(ctx.resource)
    if where is None:
        return ["the referral states no direction"]
    _, referrer, _, receiver = _sides(ctx)
    low, high = ctx.tier(referrer), ctx.tier(receiver)
    if low is None or high is None:
        return None if ctx.missing else ["the facility level of the referrer or the receiver is not known"]
    if where == "up" and not high > low:
        return [f"an up-referral goes to a higher level (referrer tier {low}, receiver tier {high})"]
    if where == "down" and not high < low:
        return [f"a down-referral goes to a lower level (referrer tier {low}, receiver tier {high})"]
    if where == "lateral" and high != low:
        return [f"a lateral referral stays on one level (referrer tier {low}, receiver tier {high})"]
    return None


@evaluator("lateral-reason", "ServiceRequest", only=active_referral)
def check_lateral_reason(ctx: Context, rule: Rule):
    if _referral_active(ctx) and direction(ctx.resource) == "lateral" and not justification(ctx.resource):
        return ["a lateral referral needs a justification"]
    return None


@evaluator("consortium-first", "ServiceRequest", only=active_referral)
def check_consortium_first(ctx: Context, rule: Rule):
    if not _referral_active(ctx) or direction(ctx.resource) != "up":
        return None
    referrer_ref, _, receiver_ref, _ = _sides(ctx)
    network, lead = ctx.facts.consortium_of(referrer_ref)
    if lead is None or receiver_ref is None or receiver_ref == lead or lead == referrer_ref:
        return None
    beyond = set(ctx.rule_set.param("consortium", "beyondCapability", default=[]) or [])
    consortia = ctx.rule_set.param("consortium", "consortia", default={}) or {}
    network_id = (network or "").partition("/")[2]
    beyond.update((consortia.get(network_id) or {}).get("beyondCapability", []))
    if any(code_matches(code, beyond) for code in reason_codes(ctx.resource)):
        return None
    if justification(ctx.resource):
        return None
    return [f"the referrer's consortium lead hospital is {lead}"]


def _derived_scope(ctx: Context, referrer: dict | None, receiver: dict | None) -> str | None:
    a, b = Facts.address(referrer), Facts.address(receiver)
    if a.get("state") and b.get("state") and a["state"] != b["state"]:
        return "cross-province"
    if a.get("city") and b.get("city") and a["city"] != b["city"]:
        return "within-province"
    return None


def _scopes(ctx: Context) -> tuple[str | None, str | None]:
    declared = v.codes(v.value(v.extension(ctx.resource, v.SCOPE)))
    _, referrer, _, receiver = _sides(ctx)
    return (declared[0] if declared else None), _derived_scope(ctx, referrer, receiver)


@evaluator("scope-declared", "ServiceRequest", only=active_referral)
def check_scope(ctx: Context, rule: Rule):
    if not _referral_active(ctx):
        return None
    declared, derived = _scopes(ctx)
    if derived and declared in v.SCOPE_ORDER and v.SCOPE_ORDER.index(declared) < v.SCOPE_ORDER.index(derived):
        return [f"declared scope {declared}, but the institutions' addresses make it {derived}"]
    return None


@evaluator("cross-region-assessment", "ServiceRequest", only=active_referral)
def check_assessment(ctx: Context, rule: Rule):
    if not _referral_active(ctx):
        return None
    declared, derived = _scopes(ctx)
    needs = set(ctx.rule_set.param("assessment", "scopes", default=["cross-province"]))
    if declared not in needs and derived not in needs:
        return None
    assessment = v.extension(ctx.resource, v.ASSESSMENT)
    if assessment is None:
        return ["no necessity assessment is recorded"]
    details = []
    if "necessary" not in v.codes(v.sub_value(assessment, "conclusion")):
        details.append("the assessment does not conclude the referral is necessary")
    role = ctx.get(v.sub_value(assessment, "assessor"))
    if role is None:
        details.append("the assessor's PractitionerRole is not known")
        return details
    titles = set(ctx.rule_set.param("assessment", "titles", default=["231", "232"]))
    if not titles & set(Facts.professional_titles(role)):
        details.append("the assessor is not an associate chief physician or above")
    levels = set(ctx.rule_set.param("assessment", "facilityLevels", default=["2", "3"]))
    _, org = ctx.organization(role.get("organization"))
    if Facts.facility_level(org) not in levels:
        details.append("the assessor does not work at a level-2 or level-3 hospital")
    return details


@evaluator("first-contact", "ServiceRequest", only=active_referral)
def check_first_contact(ctx: Context, rule: Rule):
    if not _referral_active(ctx) or direction(ctx.resource) != "up":
        return None
    _, referrer, _, _ = _sides(ctx)
    tier = ctx.tier(referrer)
    if tier is None:
        return None
    listed = ctx.base_list(tier)
    hits = [code for code in reason_codes(ctx.resource) if code_matches(code, listed)]
    if hits and v.extension(ctx.resource, v.CONSENT_EXEMPTION) is None and ctx.resource.get("priority") != "stat":
        return [f"{', '.join(hits)} is on the first-contact list of the referrer's level"]
    return None


@evaluator("improper-admission", "Encounter")
def check_improper_admission(ctx: Context, rule: Rule):
    encounter = ctx.resource
    if encounter.get("basedOn") or (encounter.get("class") or {}).get("code") == "EMER":
        return None
    _, provider = ctx.organization(encounter.get("serviceProvider"))
    tier = ctx.tier(provider)
    base_max = ctx.rule_set.param("tiers", "baseMax", default=2)
    if tier is None or tier <= base_max:
        return None
    listed = ctx.base_list(base_max)
    hits = [code for code in reason_codes(encounter) if code_matches(code, listed)]
    for diagnosis in encounter.get("diagnosis") or []:
        condition = ctx.facts.get(diagnosis.get("condition"))
        hits.extend(code for code in v.codes((condition or {}).get("code")) if code_matches(code, listed))
    if hits:
        return [f"{', '.join(sorted(set(hits)))} is a base-level disease admitted without a referral"]
    return None


def parse_instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value[:10])
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# ---- the check the repository runs -----------------------------------------------------------

RULE_TYPES = {"ServiceRequest", "Encounter", "Appointment", "MedicationRequest"}


def governing_organization(facts: Facts, resource_type: str, resource: dict):
    """The organisation whose region's rules apply: the referrer, provider, prescriber or schedule owner."""
    if resource_type == "ServiceRequest":
        return facts.organization(resource.get("requester"))
    if resource_type == "Encounter":
        return facts.organization(resource.get("serviceProvider"))
    if resource_type == "MedicationRequest":
        return facts.organization(resource.get("requester"))
    if resource_type == "Appointment":
        for ref in resource.get("basedOn") or []:
            request = facts.get(ref)
            if request:
                return facts.organization(request.get("requester"))
    return None


def evaluate(rule_book: RuleBook, facts: Facts, resource_type: str, resource: dict, previous: dict | None,
             now: datetime | None = None) -> tuple[list[dict], Context | None]:
    """Every applicable rule's issues for one write, and the context (its ``missing`` set)."""
    if resource_type not in RULE_TYPES or not may_fire(resource_type, resource):
        return [], None
    rule_set = rule_book.for_organization(governing_organization(facts, resource_type, resource))
    ctx = Context(facts, resource_type, resource, previous, rule_set, now)
    issues: list[dict] = []
    for rule in rule_set.rules:
        types, fn = EVALUATORS[rule.check]
        if resource_type not in types:
            continue
        details = fn(ctx, rule)
        if details:
            issues.append(rule_issue(rule_set, rule, details))
    return issues, ctx


def rule_issue(rule_set: RuleSet, rule: Rule, details: list[str]) -> dict:
    zh, en = rule.message.get("zh", ""), rule.message.get("en", "")
    return {
        "severity": rule.severity,
        "code": "business-rule",
        "details": {"coding": [{"system": rule_set.system, "code": rule.id}], "text": zh},
        "diagnostics": f"[{rule_set.id}/{rule.id}] {en} ({'; '.join(details)}) — {zh}",
    }


# evaluators kept beside the feature they serve register themselves on import
from . import capacity, prescriptions  # noqa: E402,F401
