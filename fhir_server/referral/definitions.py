"""OperationDefinitions of the referral and subscription operations: what the CapabilityStatement
points at and what the server serves read-only (``CONFORMANCE_SOURCES``)."""

from __future__ import annotations

from . import vocabulary as v

BASE = f"{v.SERVER_BASE}/OperationDefinition"


def _param(name: str, use: str, type_: str | None, min_: int, max_: str, doc: str, parts: list | None = None) -> dict:
    entry = {"name": name, "use": use, "min": min_, "max": max_, "documentation": doc}
    if type_:
        entry["type"] = type_
    if parts:
        entry["part"] = parts
    return entry


def _definition(id_: str, code: str, title: str, description: str, resources: list[str], system: bool, type_: bool,
                instance: bool, parameters: list[dict]) -> dict:
    return {"resourceType": "OperationDefinition", "id": id_, "url": f"{BASE}/{id_}", "version": "0.1.0",
            "name": "".join(part.capitalize() for part in id_.split("-")), "title": title, "status": "active",
            "kind": "operation", "description": description, "affectsState": False, "code": code,
            "resource": resources, "system": system, "type": type_, "instance": instance, "parameter": parameters}


def operation_definitions() -> list[dict]:
    return [
        _definition("Task-overdue", "overdue", "逾期未响应转诊 Overdue referrals",
                    "Referral Tasks still requested/received after their response deadline (restriction.period.end, "
                    "else authoredOn + the region's responseHours).", ["Task"], False, True, False, [
                        _param("owner", "in", "string", 0, "1", "Only Tasks owned by this organisation (Organization/id)"),
                        _param("now", "in", "dateTime", 0, "1", "The moment to judge against (default: now)"),
                        _param("return", "out", "Bundle", 1, "1", "searchset of the overdue Tasks, oldest deadline first")]),
        _definition("ServiceRequest-insurance-estimate", "insurance-estimate", "医保报销估算 Insurance estimate",
                    "Deductible handling, level-based reimbursement and out-of-area penalty for a referral chain, each "
                    "figure traced to the rule-set parameter that produced it.", ["ServiceRequest"], False, False, True, [
                        _param("coverage", "in", "string", 0, "1", "Coverage/id (default: ServiceRequest.insurance)"),
                        _param("setting", "in", "code", 0, "1", "inpatient (default) or outpatient"),
                        _param("reimbursementPercent", "out", "decimal", 1, "1", "Level rate minus penalty"),
                        _param("deductible", "out", None, 1, "1", "handling (Coding), rule, explanation"),
                        _param("levelRate", "out", None, 1, "1", "percent, tier, rule"),
                        _param("outOfAreaPenalty", "out", None, 1, "1", "points, rule, explanation"),
                        _param("chain", "out", None, 1, "1", "the referrals of the chain, oldest first")]),
        _definition("referral-statistics", "referral-statistics", "转诊统计 Referral statistics",
                    "Referrals up/down/lateral by organisation and month, acceptance rate, median response time, "
                    "reserved-slot use, base-level and county-internal visit shares, improper admissions and "
                    "referrals; also as a MeasureReport.", [], True, False, False, [
                        _param("start", "in", "dateTime", 0, "1", "Period start (inclusive)"),
                        _param("end", "in", "dateTime", 0, "1", "Period end (exclusive)"),
                        _param("organization", "in", "string", 0, "1", "Only referrals from or to this organisation"),
                        _param("measureReport", "out", "MeasureReport", 1, "1", "The figures as a summary MeasureReport")]),
        _definition("Schedule-slot-usage", "slot-usage", "预留号源使用 Reserved-slot usage",
                    "Per schedule and day: slots, reserved, used by referrals, released, unused, share vs the region's "
                    "minimum.", ["Schedule"], False, True, True, [
                        _param("organization", "in", "string", 0, "1", "Organisation whose region's minimum applies"),
                        _param("now", "in", "dateTime", 0, "1", "The moment release is judged against"),
                        _param("day", "out", None, 0, "*", "schedule, date, counts, reservedShare, belowMinimum")]),
        _definition("Subscription-delivery-log", "delivery-log", "通知投递记录 Delivery log",
                    "The AuditEvents recording each delivery attempt of a Subscription, newest first.",
                    ["Subscription"], False, False, True, [
                        _param("return", "out", "Bundle", 1, "1", "searchset of AuditEvents")]),
    ]


def definition(id_: str) -> dict:
    return next(d for d in operation_definitions() if d["id"] == id_)
