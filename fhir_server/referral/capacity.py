"""Reserved referral capacity: slots a lead hospital keeps for its member base institutions.

A Slot is reserved when it carries the server extension ``referral-reserved-slot`` (true). Only an
Appointment based on a referral from one of the hospital's member base institutions may book it,
until the rule set's ``releaseHours`` before its start, when an unused reserved slot opens to all.
:func:`slot_usage` reports reserved vs used per schedule and day against the region's minimum share.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

from . import vocabulary as v
from .facts import Facts, local_reference
from .rules import Context, Rule, RuleSet, evaluator, parse_instant


def slot_reserved(slot: dict | None) -> bool:
    return v.value(v.extension(slot or {}, v.RESERVED_SLOT)) is True


def slot_released(ctx_rule_set: RuleSet, slot: dict, now: datetime) -> bool:
    """Unused reserved slots open to everyone a configured number of hours before they start."""
    hours = ctx_rule_set.param("reservedCapacity", "releaseHours", default=24)
    start = parse_instant(slot.get("start"))
    return start is not None and start - timedelta(hours=hours) <= now


@evaluator("reserved-slot-booking", "Appointment")
def check_reserved_booking(ctx: Context, rule: Rule):
    appointment = ctx.resource
    if appointment.get("status") in ("cancelled", "noshow", "entered-in-error"):
        return None
    details = []
    for slot_ref in appointment.get("slot") or []:
        slot = ctx.get(slot_ref)
        if not slot_reserved(slot) or slot_released(ctx.rule_set, slot, ctx.now):
            continue
        schedule = ctx.get(slot.get("schedule")) or {}
        leads = {ctx.facts.organization_ref(actor) or (ctx.facts.get(actor) or {}).get("managingOrganization", {})
                 .get("reference") for actor in schedule.get("actor") or []} - {None}
        referral = next((ctx.get(ref) for ref in appointment.get("basedOn") or []
                         if (local_reference(ref) or "").startswith("ServiceRequest/")), None)
        if referral is None or not v.is_referral_request(referral):
            details.append(f"{local_reference(slot_ref)} is reserved for referrals and the booking is not based on one")
            continue
        referrer_ref = ctx.facts.organization_ref(referral.get("requester"))
        members = set().union(*(ctx.facts.members_of_lead(lead) for lead in leads)) if leads else set()
        base_max = ctx.rule_set.param("tiers", "baseMax", default=2)
        tier = ctx.tier(ctx.facts.get(referrer_ref)) if referrer_ref else None
        if referrer_ref not in members or tier is None or tier > base_max:
            details.append(f"{local_reference(slot_ref)} is reserved for referrals from the hospital's member base "
                           f"institutions; {referrer_ref} is not one")
    return details


@evaluator("referral-priority", "Appointment")
def check_referral_priority(ctx: Context, rule: Rule):
    appointment = ctx.resource
    based = [ctx.get(ref) for ref in appointment.get("basedOn") or []
             if (local_reference(ref) or "").startswith("ServiceRequest/")]
    if not any(r and v.is_referral_request(r) for r in based):
        return None
    highest = ctx.rule_set.param("reservedCapacity", "priority", default=1)
    priority = appointment.get("priority")
    if not isinstance(priority, int) or priority == 0 or priority > highest:
        return [f"a referred patient's appointment carries priority {highest} or higher (1 = highest)"]
    return None



def slot_usage(session, rule_set: RuleSet, schedule_refs: list[str] | None = None,
               now: datetime | None = None) -> list[dict]:
    """Per schedule and day: slots, reserved, reserved booked by referrals, released, share vs target."""
    now = now or datetime.now(timezone.utc)
    facts = Facts(session)
    slots = []
    if schedule_refs:
        for ref in schedule_refs:
            slots.extend(facts.query("Slot", f"schedule={ref}"))
    else:
        slots = facts.query("Slot", "")
    booked: dict[str, dict] = {}
    for appointment in facts.query("Appointment", "status=booked,arrived,fulfilled,checked-in,pending,proposed"):
        for slot_ref in appointment.get("slot") or []:
            booked[local_reference(slot_ref)] = appointment
    rows: dict[tuple[str, str], dict] = defaultdict(lambda: {"slots": 0, "reserved": 0, "reservedUsedByReferral": 0,
                                                            "reservedReleased": 0, "reservedUnused": 0})
    for slot in slots:
        start = parse_instant(slot.get("start"))
        day = start.date().isoformat() if start else "unknown"
        row = rows[(local_reference(slot.get("schedule")) or "unknown", day)]
        row["slots"] += 1
        if not slot_reserved(slot):
            continue
        row["reserved"] += 1
        appointment = booked.get(f"Slot/{slot['id']}")
        if appointment is not None and any((local_reference(r) or "").startswith("ServiceRequest/")
                                           for r in appointment.get("basedOn") or []):
            row["reservedUsedByReferral"] += 1
        elif appointment is None and slot_released(rule_set, slot, now):
            row["reservedReleased"] += 1
        elif appointment is None:
            row["reservedUnused"] += 1
    minimum = rule_set.param("reservedCapacity", "minShare", default=0)
    report = []
    for (schedule, day), row in sorted(rows.items()):
        share = row["reserved"] / row["slots"] if row["slots"] else 0.0
        report.append({"schedule": schedule, "day": day, **row, "reservedShare": round(share, 4),
                       "minimumShare": minimum, "belowMinimum": share < minimum})
    return report
