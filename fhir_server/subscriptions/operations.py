"""``Subscription/[id]/$delivery-log``: the delivery attempts recorded for one Subscription, newest first."""

from __future__ import annotations

from fhir_server.api.operations import OperationContext, operation
from fhir_server.formats import json as fjson
from fhir_server.referral.definitions import definition


@operation("delivery-log", types=["Subscription"], levels=("instance",), methods=("GET",),
           definition=definition("Subscription-delivery-log"))
def delivery_log(ctx: OperationContext) -> dict:
    from fhir_server.api.negotiation import base_url
    from fhir_server.search.query import Parser
    from fhir_server.search.registry import default_registry

    repository = ctx.repository
    with repository.store.session() as session:
        repository.read_in(session, "Subscription", ctx.id)  # 404/410 for an unknown Subscription
        query = Parser(default_registry()).parse(["AuditEvent"], [("entity", f"Subscription/{ctx.id}")], strict=True)
        query.limit_all = 1000
        query.total = "none"
        query.includes = query.revincludes = ()
        events = [fjson.loads(r.body) for r in session.search(query).matches]
    events.sort(key=lambda e: e.get("recorded", ""), reverse=True)
    base = base_url(ctx.request)
    return {"resourceType": "Bundle", "type": "searchset", "total": len(events),
            "entry": [{"fullUrl": f"{base}/AuditEvent/{e['id']}", "resource": e, "search": {"mode": "match"}}
                      for e in events]}
