"""Long prescriptions (长期处方): the rules a long-prescription MedicationRequest must meet.

Supply within the region's weeks (national ≤ 12, Gansu 4–12), an eligible chronic condition, a
signed family-doctor Contract referenced by the plan (``CarePlan.supportingInfo``), and a
prescriber at a base institution — or an upper-level specialist for drugs of the upper catalogue.
"""

from __future__ import annotations

from .facts import local_reference
from .rules import Context, Rule, code_matches, evaluator, reason_codes
from . import vocabulary as v


def _long_prescription_plan(ctx: Context) -> dict | None:
    for ref in ctx.resource.get("basedOn") or []:
        if (local_reference(ref) or "").startswith("CarePlan/"):
            plan = ctx.get(ref)
            if plan and any(v.codes(c, v.CS_CARE_PLAN_CATEGORY) == ["long-prescription"]
                            for c in plan.get("category") or []):
                return plan
    return None


def _is_long_prescription(ctx: Context) -> bool:
    profiles = (ctx.resource.get("meta") or {}).get("profile") or []
    return ctx.resource_type == "MedicationRequest" and (
        any(p.endswith("/long-prescription-medication-request") for p in profiles)
        or _long_prescription_plan(ctx) is not None)


def supply_days(request: dict) -> float | None:
    duration = ((request.get("dispenseRequest") or {}).get("expectedSupplyDuration")) or {}
    amount = duration.get("value")
    unit = duration.get("code") or duration.get("unit")
    factor = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "month": 30}.get(unit)
    if amount is None or factor is None:
        return None
    return float(amount) * factor


@evaluator("long-prescription-duration", "MedicationRequest")
def check_long_duration(ctx: Context, rule: Rule):
    if not _is_long_prescription(ctx):
        return None
    days = supply_days(ctx.resource)
    low = ctx.rule_set.param("longPrescription", "minWeeks", default=0) * 7
    high = ctx.rule_set.param("longPrescription", "maxWeeks", default=12) * 7
    if days is None:
        return ["the expected supply duration is missing or not in days/weeks"]
    if days > high or days < low:
        return [f"supply of {days:g} days is outside {low:g}–{high:g} days"]
    return None


@evaluator("long-prescription-condition", "MedicationRequest")
def check_long_condition(ctx: Context, rule: Rule):
    if not _is_long_prescription(ctx):
        return None
    eligible = ctx.rule_set.param("longPrescription", "conditions", default=[])
    if not any(code_matches(code, eligible) for code in reason_codes(ctx.resource)):
        return ["the prescription's condition is not an eligible chronic condition"]
    return None


@evaluator("long-prescription-contract", "MedicationRequest")
def check_long_contract(ctx: Context, rule: Rule):
    if not _is_long_prescription(ctx):
        return None
    plan = _long_prescription_plan(ctx) or {}
    patient = local_reference(ctx.resource.get("subject"))
    for ref in (plan.get("supportingInfo") or []) + (ctx.resource.get("supportingInformation") or []):
        contract = ctx.get(ref) if (local_reference(ref) or "").startswith("Contract/") else None
        if contract and contract.get("status") in ("executed", "executable") and \
                patient in {local_reference(s) for s in contract.get("subject") or []}:
            return None
    return ["no signed family-doctor Contract for the patient is referenced by the plan"]


@evaluator("long-prescription-prescriber", "MedicationRequest")
def check_long_prescriber(ctx: Context, rule: Rule):
    if not _is_long_prescription(ctx):
        return None
    _, org = ctx.organization(ctx.resource.get("requester"))
    tier = ctx.tier(org)
    if tier is None:
        return None if ctx.missing else ["the prescriber's institution level is not known"]
    if tier <= ctx.rule_set.param("tiers", "baseMax", default=2):
        return None
    catalogue = ctx.rule_set.param("longPrescription", "upperCatalogue", default=[])
    medication = v.codes(ctx.resource.get("medicationCodeableConcept"))
    if any(code in catalogue for code in medication):
        return None
    return ["an upper-level prescriber may issue long prescriptions only for drugs of the upper-level catalogue"]
