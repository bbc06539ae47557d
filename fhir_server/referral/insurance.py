"""Insurance estimate for a referral chain: deductible handling, level-based rate, out-of-area penalty.

Every figure names the rule-set parameter that produced it (``gansu:insurance.inpatientRates.3``),
so a platform can show the patient why. The chain is the referral and the referrals it is
``basedOn`` (oldest first); the governing rule set is the one of the insured region.
"""

from __future__ import annotations

from decimal import Decimal

from fhir_server.errors import FhirError

from . import vocabulary as v
from .facts import Facts, local_reference
from .regions import region_code
from .rules import Context, RuleBook, direction

MAX_CHAIN = 20


def chain(facts: Facts, request: dict) -> list[dict]:
    found = [request]
    seen = {request.get("id")}
    current = request
    while len(found) < MAX_CHAIN:
        parent = next((facts.get(ref) for ref in current.get("basedOn") or []
                       if (local_reference(ref) or "").startswith("ServiceRequest/")), None)
        if parent is None or parent.get("id") in seen:
            break
        found.append(parent)
        seen.add(parent.get("id"))
        current = parent
    return list(reversed(found))


def _part(name: str, **value) -> dict:
    return {"name": name, **value}


def estimate(session, rule_book: RuleBook, request_id: str, coverage_ref: str | None = None,
             setting: str = "inpatient") -> dict:
    facts = Facts(session)
    request = facts.get(f"ServiceRequest/{request_id}")
    if request is None:
        raise FhirError(404, f"ServiceRequest/{request_id} is not known", "not-found")
    coverage_ref = coverage_ref or local_reference((request.get("insurance") or [None])[0])
    coverage = facts.get(coverage_ref) if coverage_ref else None
    if coverage is None or coverage.get("resourceType") != "Coverage":
        raise FhirError(422, "the estimate needs the patient's Coverage (ServiceRequest.insurance or parameter "
                             "'coverage')", "required")
    insured = v.codes(v.value(v.extension(coverage, v.INSURED_REGION)))
    insured_code = insured[0] if insured else None
    rule_set = rule_book.for_region(insured_code)
    steps = chain(facts, request)
    referrer_ref = facts.organization_ref(request.get("requester"))
    receiver_ref = facts.organization_ref((request.get("performer") or [None])[0])
    receiver = facts.get(receiver_ref) if receiver_ref else None
    ctx = Context(facts, "ServiceRequest", request, None, rule_set)
    tier = ctx.tier(receiver)
    place = region_code(receiver)
    digits = rule_set.param("insurance", "poolDigits", default=4)
    same_pool = bool(insured_code and place and insured_code[:digits] == place[:digits])
    same_province = bool(insured_code and place and insured_code[:2] == place[:2])
    where = direction(request)
    name = rule_set.id
    trace: list[dict] = []

    # deductible
    handling_rules = rule_set.param("insurance", "deductible", default={})
    if where == "up" and same_pool and all(direction(step) == "up" for step in steps):
        handling, key = handling_rules.get("upwardSamePool", "continued"), "upwardSamePool"
        why = "step-wise upward referral within the insured pooling region"
    elif where == "down" and len(steps) > 1:
        handling, key = handling_rules.get("downwardSameEpisode", "waived"), "downwardSameEpisode"
        why = "downward referral in the same episode (based on the earlier referral)"
    else:
        handling, key = handling_rules.get("otherwise", "standard"), "otherwise"
        why = "no continuity applies"
    trace.append(_part("deductible", part=[
        _part("handling", valueCoding={"system": v.CS_DEDUCTIBLE, "code": handling}),
        _part("rule", valueString=f"{name}:insurance.deductible.{key}"),
        _part("explanation", valueString=why)]))

    # level-based rate
    rates = rule_set.param("insurance", f"{setting}Rates", default={}) or {}
    base = rates.get(str(tier)) if tier is not None else None
    if base is None:
        raise FhirError(422, f"no {setting} reimbursement rate for the receiving institution's level", "business-rule")
    trace.append(_part("levelRate", part=[
        _part("percent", valueDecimal=Decimal(str(base))),
        _part("tier", valueInteger=tier),
        _part("rule", valueString=f"{name}:insurance.{setting}Rates.{tier}")]))

    # out-of-area penalty
    penalties = rule_set.param("insurance", "penalties", default={}) or {}
    penalty, key, why = 0, None, "care inside the insured pooling region"
    if not same_pool and insured_code and place:
        filing = v.extension(coverage, v.OFFSITE_FILING)
        filed_place = v.codes(v.sub_value(filing, "placeOfCare"))
        referred = v.extension(request, v.ASSESSMENT) is not None or same_province
        if request.get("priority") == "stat":
            key, why = None, "emergency: no out-of-area penalty"
        elif filed_place and any(place.startswith(code.rstrip("0")) for code in filed_place):
            key, why = "offsiteFiled", "out-of-area care with an off-site filing"
        elif referred:
            key, why = "offsiteReferred", "out-of-area care through a referral"
        else:
            key, why = "offsiteUnfiled", "out-of-area care without filing or referral"
        if key:
            penalty = penalties.get(key, 0)
    trace.append(_part("outOfAreaPenalty", part=[
        _part("points", valueDecimal=Decimal(str(penalty))),
        *([_part("rule", valueString=f"{name}:insurance.penalties.{key}")] if key else []),
        _part("explanation", valueString=why)]))

    rate = max(Decimal(str(base)) - Decimal(str(penalty)), Decimal(0))
    return {"resourceType": "Parameters", "parameter": [
        _part("ruleSet", valueString=name),
        _part("setting", valueCode=setting),
        _part("samePool", valueBoolean=same_pool),
        _part("reimbursementPercent", valueDecimal=rate),
        *trace,
        _part("chain", part=[_part("referral", valueReference={"reference": f"ServiceRequest/{step['id']}"})
                             for step in steps]),
        *([_part("referrer", valueReference={"reference": referrer_ref})] if referrer_ref else []),
    ]}
