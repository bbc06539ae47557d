"""Reserved referral slots: who may book them, release before start, priority, and the usage report."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.referral.conftest import FHIR_JSON, clone, created_ids, fixture, post_bundle
from tests.referral.test_rules import JUSTIFICATION, fired, route

RESERVED = "https://fhir.referral.cn/server/StructureDefinition/referral-reserved-slot"


def slot(id: str, start: str, reserved: bool) -> dict:
    end = (datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resource = {"resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/cardiology"},
                "status": "free", "start": start, "end": end}
    if reserved:
        resource["extension"] = [{"url": RESERVED, "valueBoolean": True}]
    return resource


def appointment(slot_id: str, based_on: str | None = None, priority: int | None = None) -> dict:
    resource = {"resourceType": "Appointment", "status": "booked", "slot": [{"reference": f"Slot/{slot_id}"}],
                "participant": [{"actor": {"reference": "Patient/zhang-san"}, "status": "accepted"}]}
    if based_on:
        resource["basedOn"] = [{"reference": based_on}]
    if priority is not None:
        resource["priority"] = priority
    return resource


def book(client, resource: dict):
    return client.post("/Appointment", json=resource, headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})


def test_reserved_slots(network):
    client = network
    soon = (datetime.now(timezone.utc) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    schedule = {"resourceType": "Schedule", "id": "cardiology", "active": True,
                "actor": [{"reference": "Organization/county-hosp"}]}
    resources = [schedule, slot("s1", "2030-01-10T01:00:00Z", True), slot("s2", "2030-01-10T01:15:00Z", True),
                 slot("s3", "2030-01-10T01:30:00Z", False), slot("s4", "2030-01-10T01:45:00Z", False),
                 slot("s5", "2030-01-10T02:00:00Z", False), slot("soon", soon, True)]
    for resource in resources:
        response = client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON)
        assert response.status_code == 201, response.text
    member_referral = f"ServiceRequest/{created_ids(post_bundle(client, fixture('up-referral.json')))['ServiceRequest']}"
    lateral = route(clone(fixture("up-referral.json")["entry"][0]["resource"]), "lateral", "within-city",
                    "role-county-attending", "other-county")
    lateral["extension"].append({"url": JUSTIFICATION, "valueString": "设备检修"})
    # a referral to the county hospital from a hospital outside its consortium
    outsider = route(clone(fixture("up-referral.json")["entry"][0]["resource"]), "lateral", "within-city",
                     "role-county-attending", "county-hosp")
    outsider["requester"] = {"reference": "PractitionerRole/role-other"}
    client.put("/PractitionerRole/role-other", json={
        "resourceType": "PractitionerRole", "id": "role-other", "practitioner": {"reference": "Practitioner/dr-zhao"},
        "organization": {"reference": "Organization/other-county"}}, headers=FHIR_JSON)
    outsider["extension"].append({"url": JUSTIFICATION, "valueString": "同级会诊"})
    response = client.post("/ServiceRequest", json=outsider, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    outsider_ref = f"ServiceRequest/{response.json()['id']}"

    refused = book(client, appointment("s1"))
    assert refused.status_code == 422 and fired(refused) == {"reserved-slot-booking": "error"}
    refused = book(client, appointment("s2", outsider_ref, 1))
    assert refused.status_code == 422 and "not one" in refused.text
    booked = book(client, appointment("s1", member_referral, 1))
    assert booked.status_code == 201 and fired(booked) == {}
    # anyone may book an ordinary slot, and a reserved one once it has been released before its start
    assert book(client, appointment("s3")).status_code == 201
    assert book(client, appointment("soon")).status_code == 201
    # a referred patient without priority gets a warning
    no_priority = book(client, appointment("s4", member_referral))
    assert no_priority.status_code == 201 and fired(no_priority) == {"referral-priority": "warning"}

    usage = client.get("/Schedule/cardiology/$slot-usage", params={"now": "2030-01-01T00:00:00Z"})
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert body["parameter"][0] == {"name": "ruleSet", "valueString": "gansu"}
    days = {p["part"][1]["valueDate"]: {q["name"]: next(val for key, val in q.items() if key.startswith("value"))
                                         for q in p["part"]} for p in body["parameter"][1:]}
    day = days["2030-01-10"]
    assert (day["slots"], day["reserved"], day["reservedUsedByReferral"], day["reservedUnused"]) == (5, 2, 1, 1)
    assert day["reservedShare"] == 0.4 and day["minimumShare"] == 0.2 and day["belowMinimum"] is False
