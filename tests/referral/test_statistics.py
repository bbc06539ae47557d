"""$referral-statistics: volumes, acceptance, response time, visit shares and improper admissions."""

from __future__ import annotations

from tests.referral.conftest import FHIR_JSON, created_ids, fixture, post_bundle
from tests.referral.test_workflow import bring_to

IG = "https://fhir.referral.cn/ig"


def visit(client, provider: str, code: str, based_on: str | None = None):
    encounter = {"resourceType": "Encounter", "status": "finished",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "subject": {"reference": "Patient/zhang-san"}, "serviceProvider": {"reference": provider},
                 "period": {"start": "2026-11-22T09:00:00+08:00"},
                 "reasonCode": [{"coding": [{"system": f"{IG}/CodeSystem/icd-10-cn", "code": code}]}]}
    if based_on:
        encounter["basedOn"] = [{"reference": based_on}]
    response = client.post("/Encounter", json=encounter, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def values(body: dict) -> dict:
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value"))
            for p in body["parameter"] if any(k.startswith("value") for k in p)}


def test_statistics_and_measure_report(network):
    client = network
    bring_to(client, "completed")
    bring_to(client, "rejected")
    bring_to(client, "requested")
    hypertension = fixture("up-referral.json")  # on the village clinic's first-contact list: an improper up-referral
    hypertension["entry"][0]["resource"]["reasonCode"][0]["coding"][0]["code"] = "I10"
    improper_referral = created_ids(post_bundle(client, hypertension))["ServiceRequest"]
    post_bundle(client, fixture("down-referral.json"))
    visit(client, "Organization/township-a", "J20")
    improper = visit(client, "Organization/county-hosp", "J00")

    response = client.get("/$referral-statistics", params={"start": "2026-11-20", "end": "2026-12-01"})
    assert response.status_code == 200, response.text
    body = response.json()
    figures = values(body)
    assert (figures["referrals"], figures["up"], figures["down"], figures["lateral"]) == (5, 4, 1, 0)
    assert (figures["answered"], figures["accepted"], figures["acceptanceRate"]) == (2, 1, 0.5)
    assert figures["medianResponseHours"] >= 0
    assert (figures["visits"], figures["baseLevelVisits"]) == (3, 1)
    assert figures["baseLevelVisitShare"] == 0.3333 and figures["baseLevelVisitTarget"] == 0.65
    assert figures["countyInternalVisitShare"] == 1 and figures["countyInternalVisitTarget"] == 0.9
    assert figures["improperAdmissions"] == 1 and figures["improperReferrals"] == 1
    assert {"name": "improperReferral",
            "valueReference": {"reference": f"ServiceRequest/{improper_referral}"}} in body["parameter"]
    months = [p["part"] for p in body["parameter"] if p["name"] == "month"]
    assert months == [[{"name": "month", "valueString": "2026-11"}, {"name": "down", "valueInteger": 1},
                       {"name": "up", "valueInteger": 4}]]
    assert {"name": "improperAdmission", "valueReference": {"reference": f"Encounter/{improper}"}} in body["parameter"]
    by_org = {p["part"][0]["valueReference"]["reference"]: {q["name"]: q.get("valueInteger") for q in p["part"][1:]}
              for p in body["parameter"] if p["name"] == "organization"}
    assert by_org["Organization/village-a"] == {"up-out": 4, "down-in": 1}
    assert by_org["Organization/county-hosp"] == {"up-in": 4, "down-out": 1}

    report = next(p["resource"] for p in body["parameter"] if p["name"] == "measureReport")
    assert report["resourceType"] == "MeasureReport" and report["type"] == "summary"
    groups = {g["code"]["coding"][0]["code"]: g for g in report["group"]}
    assert groups["acceptance-rate"]["measureScore"]["value"] == 0.5
    assert groups["referrals-up"]["population"][0]["count"] == 4
    assert groups["improper-referrals"]["population"][0]["count"] == 1
    assert "median-response-hours" in groups
    # the MeasureReport is a valid resource the server itself accepts
    assert client.post("/MeasureReport", json=report, headers=FHIR_JSON).status_code == 201

    later = values(client.get("/$referral-statistics", params={"start": "2026-11-21"}).json())
    assert later["referrals"] == 0
    township = values(client.get("/$referral-statistics",
                                 params={"organization": "Organization/township-a"}).json())
    assert township["referrals"] == 0


def test_statistics_parameters_are_checked(network):
    assert network.get("/$referral-statistics", params={"start": "yesterday"}).status_code == 400
