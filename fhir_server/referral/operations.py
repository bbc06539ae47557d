"""The referral operations, registered in the operations table (listed in ``OPERATION_MODULES``).

- ``Task/$overdue``: the unanswered referrals past their response deadline (a worklist Bundle);
- ``ServiceRequest/[id]/$insurance-estimate``: deductible and reimbursement for a referral chain;
- ``$referral-statistics``: referral volumes, acceptance, response time, reserved-slot use and
  base-level visit share, as Parameters with a MeasureReport (a consortium member gets its own
  organisation's);
- ``Schedule/$slot-usage``: reserved vs used slots per schedule and day.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from fhir_server.api.operations import OperationContext, operation
from fhir_server.errors import FhirError
from fhir_server.security.context import current_caller, current_guard
from fhir_server.security.policy import visible_ids

from . import services
from .definitions import definition
from .facts import local_reference
from . import vocabulary as v
from .rules import parse_instant


def _now(ctx: OperationContext) -> datetime:
    value = ctx.param("now")
    if value is None:
        return datetime.now(timezone.utc)
    parsed = parse_instant(value)
    if parsed is None:
        raise FhirError(400, f"parameter 'now' is not a dateTime: {value!r}", "invalid")
    return parsed


def _base(ctx: OperationContext) -> str:
    from fhir_server.api.negotiation import base_url

    return base_url(ctx.request)


@operation("overdue", types=["Task"], levels=("type",), methods=("GET", "POST"), definition=definition("Task-overdue"))
def overdue(ctx: OperationContext) -> dict:
    from .overdue import overdue_tasks

    referral = services(ctx.repository)
    owner = ctx.param("owner")
    with ctx.repository.store.session() as session:
        found = overdue_tasks(session, referral.rule_book, _now(ctx), owner)
        # the worklist is computed over every Task; a member sees only those the access policy shows it
        caller, guard = current_caller(), current_guard()
        if caller is not None and guard is not None:
            shown = visible_ids(guard.policy, getattr(session, "inner", session), caller, "Task",
                                [task["id"] for task, _ in found])
            found = [(task, deadline) for task, deadline in found if task["id"] in shown]
    base = _base(ctx)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "entry": [{"fullUrl": f"{base}/Task/{task['id']}", "resource": task,
                   "search": {"mode": "match",
                              "extension": [{"url": v.RESPONSE_DEADLINE,
                                             "valueDateTime": deadline.strftime("%Y-%m-%dT%H:%M:%SZ")}]}}
                  for task, deadline in found],
    }


def _period(ctx: OperationContext) -> tuple[datetime | None, datetime | None]:
    found = []
    for name in ("start", "end"):
        value = ctx.param(name)
        moment = parse_instant(value) if value is not None else None
        if value is not None and moment is None:
            raise FhirError(400, f"parameter '{name}' is not a date: {value!r}", "invalid")
        found.append(moment)
    return found[0], found[1]


@operation("insurance-estimate", types=["ServiceRequest"], levels=("instance",), methods=("GET", "POST"),
           definition=definition("ServiceRequest-insurance-estimate"))
def insurance_estimate(ctx: OperationContext) -> dict:
    from .insurance import estimate

    setting = ctx.param("setting", "inpatient")
    if setting not in ("inpatient", "outpatient"):
        raise FhirError(400, "parameter 'setting' is inpatient or outpatient", "invalid")
    coverage = ctx.param("coverage")
    if isinstance(coverage, dict):
        coverage = coverage.get("reference")
    named, guard = local_reference(coverage), current_guard()
    if named and guard is not None:  # a Coverage named by the caller must be one it may read (else 404)
        guard.check_read(*named.split("/", 1))
    with ctx.repository.store.session() as session:
        return estimate(session, services(ctx.repository).rule_book, ctx.id, coverage, setting)


@operation("referral-statistics", types=None, levels=("system",), methods=("GET", "POST"),
           definition=definition("referral-statistics"))
def referral_statistics(ctx: OperationContext) -> dict:
    from .statistics import referral_statistics as compute

    start, end = _period(ctx)
    organization = ctx.param("organization")
    if isinstance(organization, dict):
        organization = organization.get("reference")
    caller = current_caller()
    if caller is not None and not caller.admin:  # a member reports on its own organisation only
        if organization not in (None, caller.organization):
            raise FhirError(403, "consortium members get the statistics of their own organisation only", "forbidden")
        organization = caller.organization
    with ctx.repository.store.session() as session:
        return compute(session, services(ctx.repository).rule_book, start, end, organization)


@operation("slot-usage", types=["Schedule"], levels=("type", "instance"), methods=("GET", "POST"),
           definition=definition("Schedule-slot-usage"))
def slot_usage(ctx: OperationContext) -> dict:
    from .capacity import slot_usage as compute
    from .facts import Facts

    referral = services(ctx.repository)
    with ctx.repository.store.session() as session:
        schedules = [f"Schedule/{ctx.id}"] if ctx.id else None
        organization = ctx.param("organization")
        facts = Facts(session)
        if organization is None and ctx.id:
            schedule = facts.get(f"Schedule/{ctx.id}") or {}
            organization = next((facts.organization_ref(actor) for actor in schedule.get("actor") or []
                                 if facts.organization_ref(actor)), None)
        rule_set = referral.rule_book.for_organization(facts.get(organization) if organization else None)
        rows = compute(session, rule_set, schedules, _now(ctx))
    return {"resourceType": "Parameters", "parameter": [
        {"name": "ruleSet", "valueString": rule_set.id},
        *[{"name": "day", "part": [
            {"name": "schedule", "valueReference": {"reference": row["schedule"]}},
            {"name": "date", "valueDate": row["day"]},
            *[{"name": key, "valueInteger": row[key]} for key in
              ("slots", "reserved", "reservedUsedByReferral", "reservedReleased", "reservedUnused")],
            {"name": "reservedShare", "valueDecimal": Decimal(str(row["reservedShare"]))},
            {"name": "minimumShare", "valueDecimal": Decimal(str(row["minimumShare"]))},
            {"name": "belowMinimum", "valueBoolean": row["belowMinimum"]}]} for row in rows]]}
