"""What the referral platform reports: volumes by direction, organisation and month, acceptance rate,
median response time, reserved-slot use, base-level and county-internal visit shares, improper
admissions and improper up-referrals — as Parameters and as a MeasureReport (one group per indicator).

Figures are computed from the current resources and the Task histories in one read session;
a period restricts referrals by ``authoredOn`` and visits by ``Encounter.period.start``; an
organisation restricts them to the referrals it made or received and the visits it provided.
"""

from __future__ import annotations

import statistics as stats
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal

from fhir_server.formats import json as fjson

from . import vocabulary as v
from .capacity import slot_usage
from .facts import Facts, local_reference
from .rules import EVALUATORS, Context, RuleBook, direction, parse_instant

MEASURE = f"{v.SERVER_BASE}/Measure/referral-statistics"
ANSWERS = ("accepted", "rejected")
ACCEPTED = ("accepted", "in-progress", "completed")


def _within(value: object, start: datetime | None, end: datetime | None) -> bool:
    moment = parse_instant(value)
    if moment is None:
        return start is None and end is None
    return (start is None or moment >= start) and (end is None or moment < end)


def _response_hours(session, task: dict) -> float | None:
    """Hours from the Task's first version to the first version the owner answered (accepted/rejected)."""
    versions, _ = session.history("Task", task["id"], count=1000)
    versions = sorted(versions, key=lambda r: r.version)
    if not versions:
        return None
    first = parse_instant(versions[0].last_updated)
    for record in versions:
        if record.deleted:
            continue
        if fjson.loads(record.body).get("status") in ANSWERS + ACCEPTED[1:]:
            answered = parse_instant(record.last_updated)
            return (answered - first).total_seconds() / 3600
    return None


def referral_statistics(session, rule_book: RuleBook, start: datetime | None = None, end: datetime | None = None,
                        organization: str | None = None) -> dict:
    facts = Facts(session)
    rule_set = rule_book.for_organization(facts.get(organization) if organization else None)
    requests = [r for r in facts.query("ServiceRequest", "") if v.is_referral_request(r)
                and r.get("status") != "entered-in-error" and _within(r.get("authoredOn"), start, end)]
    by_direction: Counter = Counter()
    by_org: dict[str, Counter] = defaultdict(Counter)
    by_month: dict[str, Counter] = defaultdict(Counter)
    improper_referrals = []
    first_contact = rule_set.rule("first-contact")
    _, first_contact_check = EVALUATORS["first-contact"]
    kept = []
    for request in requests:
        referrer = facts.organization_ref(request.get("requester"))
        receiver = facts.organization_ref((request.get("performer") or [None])[0])
        if organization and organization not in (referrer, receiver):
            continue
        kept.append(request)
        where = direction(request) or "unknown"
        by_direction[where] += 1
        if referrer:
            by_org[referrer][f"{where}-out"] += 1
        if receiver:
            by_org[receiver][f"{where}-in"] += 1
        authored = parse_instant(request.get("authoredOn"))
        by_month[authored.strftime("%Y-%m") if authored else "unknown"][where] += 1
        if first_contact is not None and first_contact_check(
                Context(facts, "ServiceRequest", request, None, rule_set), first_contact):
            improper_referrals.append(f"ServiceRequest/{request['id']}")
    ids = {f"ServiceRequest/{r['id']}" for r in kept}
    tasks = [t for t in facts.query("Task", "") if local_reference(t.get("focus")) in ids]
    answered = [t for t in tasks if t.get("status") in ("rejected",) + ACCEPTED]
    accepted = [t for t in answered if t.get("status") in ACCEPTED]
    hours = [h for h in (_response_hours(session, t) for t in answered) if h is not None]

    usage = slot_usage(session, rule_set)
    reserved = sum(row["reserved"] for row in usage)
    used = sum(row["reservedUsedByReferral"] for row in usage)

    encounters = [e for e in facts.query("Encounter", "")
                  if _within((e.get("period") or {}).get("start") or (e.get("meta") or {}).get("lastUpdated"),
                             start, end)
                  and (not organization or facts.organization_ref(e.get("serviceProvider")) == organization)]
    base_max = rule_set.param("tiers", "baseMax", default=2)
    ctx = Context(facts, "Encounter", {}, None, rule_set)
    base_visits = county_internal = 0
    improper = []
    _, improper_check = EVALUATORS["improper-admission"]
    rule = rule_set.rule("improper-admission")
    for encounter in encounters:
        provider = facts.organization(encounter.get("serviceProvider"))
        tier = ctx.tier(provider)
        if tier is not None and tier <= base_max:
            base_visits += 1
        patient = facts.get(encounter.get("subject"))
        patient_district = Facts.address(patient).get("district")
        if patient_district and patient_district == Facts.address(provider).get("district"):
            county_internal += 1
        if rule is not None and improper_check(Context(facts, "Encounter", encounter, None, rule_set), rule):
            improper.append(f"Encounter/{encounter['id']}")
    visits = len(encounters)

    figures = {
        "referrals": len(kept), "up": by_direction["up"], "down": by_direction["down"],
        "lateral": by_direction["lateral"], "answered": len(answered), "accepted": len(accepted),
        "acceptanceRate": _ratio(len(accepted), len(answered)),
        "medianResponseHours": Decimal(str(round(stats.median(hours), 2))) if hours else None,
        "reservedSlots": reserved, "reservedSlotsUsed": used, "reservedSlotUse": _ratio(used, reserved),
        "visits": visits, "baseLevelVisits": base_visits, "baseLevelVisitShare": _ratio(base_visits, visits),
        "baseLevelVisitTarget": Decimal(str(rule_set.param("targets", "baseLevelVisitShare", default=0.65))),
        "countyInternalVisits": county_internal, "countyInternalVisitShare": _ratio(county_internal, visits),
        "countyInternalVisitTarget": Decimal(str(rule_set.param("targets", "countyInternalVisitShare", default=0.9))),
        "improperAdmissions": len(improper), "improperReferrals": len(improper_referrals),
    }
    report = measure_report(figures, by_org, start, end, organization)
    parameters = [_parameter(name, value) for name, value in figures.items() if value is not None]
    for org, counts in sorted(by_org.items()):
        parameters.append({"name": "organization", "part": [
            {"name": "organization", "valueReference": {"reference": org}},
            *[{"name": key, "valueInteger": count} for key, count in sorted(counts.items())]]})
    for month, counts in sorted(by_month.items()):
        parameters.append({"name": "month", "part": [
            {"name": "month", "valueString": month},
            *[{"name": key, "valueInteger": count} for key, count in sorted(counts.items())]]})
    parameters.extend({"name": "improperAdmission", "valueReference": {"reference": ref}} for ref in improper)
    parameters.extend({"name": "improperReferral", "valueReference": {"reference": ref}} for ref in improper_referrals)
    parameters.append({"name": "ruleSet", "valueString": rule_set.id})
    parameters.append({"name": "measureReport", "resource": report})
    return {"resourceType": "Parameters", "parameter": parameters}


def _ratio(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001")) if whole else None


def _parameter(name: str, value) -> dict:
    if isinstance(value, Decimal):
        return {"name": name, "valueDecimal": value}
    return {"name": name, "valueInteger": value}


def _instant(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def measure_report(figures: dict, by_org: dict, start: datetime | None, end: datetime | None,
                   organization: str | None) -> dict:
    def group(code: str, text: str, populations: dict[str, int], score=None) -> dict:
        entry: dict = {"code": {"coding": [{"system": MEASURE, "code": code}], "text": text},
                       "population": [{"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population",
                                                            "code": kind}]}, "count": count}
                                      for kind, count in populations.items()]}
        if score is not None:
            entry["measureScore"] = {"value": score}
        return entry

    groups = [
        group("referrals-up", "上转人次 Up-referrals", {"initial-population": figures["up"]}),
        group("referrals-down", "下转人次 Down-referrals", {"initial-population": figures["down"]}),
        group("referrals-lateral", "平转人次 Lateral referrals", {"initial-population": figures["lateral"]}),
        group("acceptance-rate", "转诊接收率 Acceptance rate",
              {"denominator": figures["answered"], "numerator": figures["accepted"]}, figures["acceptanceRate"]),
        group("reserved-slot-use", "预留号源使用率 Reserved-slot use",
              {"denominator": figures["reservedSlots"], "numerator": figures["reservedSlotsUsed"]},
              figures["reservedSlotUse"]),
        group("base-level-visit-share", "基层就诊率 Base-level visit share",
              {"denominator": figures["visits"], "numerator": figures["baseLevelVisits"]},
              figures["baseLevelVisitShare"]),
        group("county-internal-visit-share", "县域内就诊率 County-internal visit share",
              {"denominator": figures["visits"], "numerator": figures["countyInternalVisits"]},
              figures["countyInternalVisitShare"]),
        group("improper-admissions", "违规收治 Improper admissions", {"initial-population": figures["improperAdmissions"]}),
        group("improper-referrals", "基层不合理上转 Up-referrals of first-contact diseases",
              {"initial-population": figures["improperReferrals"]}),
    ]
    if figures["medianResponseHours"] is not None:
        groups.append({"code": {"coding": [{"system": MEASURE, "code": "median-response-hours"}],
                                "text": "响应时间中位数（小时） Median response time (hours)"},
                       "measureScore": {"value": figures["medianResponseHours"], "unit": "h",
                                        "system": "http://unitsofmeasure.org", "code": "h"}})
    period = {k: val for k, val in (("start", _instant(start)), ("end", _instant(end))) if val}
    report = {"resourceType": "MeasureReport", "status": "complete", "type": "summary", "measure": MEASURE,
              "date": _instant(datetime.now().astimezone()), "period": period or {"start": "1900-01-01"},
              "group": groups}
    if organization:
        report["reporter"] = {"reference": organization}
    return report
