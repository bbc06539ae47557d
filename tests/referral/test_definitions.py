"""The referral operations are described by OperationDefinitions the server serves and the
CapabilityStatement points at."""

from __future__ import annotations


def test_capability_statement_points_at_served_definitions(client):
    statement = client.get("/metadata").json()
    rest = statement["rest"][0]
    by_type = {r["type"]: {o["name"]: o["definition"] for o in r.get("operation", [])} for r in rest["resource"]}
    urls = [by_type["Task"]["overdue"], by_type["ServiceRequest"]["insurance-estimate"],
            by_type["Schedule"]["slot-usage"], by_type["Subscription"]["delivery-log"],
            next(o["definition"] for o in rest["operation"] if o["name"] == "referral-statistics")]
    for url in urls:
        assert url.startswith("https://fhir.referral.cn/server/OperationDefinition/")
        served = client.get(f"/OperationDefinition/{url.rsplit('/', 1)[1]}")
        assert served.status_code == 200 and served.json()["url"] == url
