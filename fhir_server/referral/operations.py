"""The referral operations, registered in the operations table (listed in ``OPERATION_MODULES``).

- ``Task/$overdue``: the unanswered referrals past their response deadline (a worklist Bundle);
- ``ServiceRequest/[id]/$insurance-estimate``: deductible and reimbursement for a referral chain;
- ``$referral-statistics``: referral volumes, acceptance, response time, reserved-slot use and
  base-level visit share, as Parameters with a MeasureReport;
- ``Schedule/$slot-usage``: reserved vs used slots per schedule and day.
"""

from __future__ import annotations

from datetime import datetime, timezone

from fhir_server.api.operations import OperationContext, operation
from fhir_server.errors import FhirError

from . import services
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


@operation("overdue", types=["Task"], levels=("type",), methods=("GET", "POST"))
def overdue(ctx: OperationContext) -> dict:
    from .overdue import overdue_tasks

    referral = services(ctx.repository)
    owner = ctx.param("owner")
    with ctx.repository.store.session() as session:
        found = overdue_tasks(session, referral.rule_book, _now(ctx), owner)
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
