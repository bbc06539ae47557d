"""$insurance-estimate: deductible continuity, level rates and out-of-area penalties, each traced to its rule."""

from __future__ import annotations

from tests.referral.conftest import FHIR_JSON, clone, created_ids, fixture, post_bundle
from tests.referral.test_rules import reason, route


def parts(body: dict) -> dict:
    out = {}
    for parameter in body["parameter"]:
        if "part" in parameter:
            out.setdefault(parameter["name"], {p["name"]: next(v for k, v in p.items() if k.startswith("value"))
                                               for p in parameter["part"]})
        else:
            out[parameter["name"]] = next(v for k, v in parameter.items() if k.startswith("value"))
    return out


def estimate(client, request_id: str, **params) -> dict:
    response = client.get(f"/ServiceRequest/{request_id}/$insurance-estimate", params=params)
    assert response.status_code == 200, response.text
    return parts(response.json())


def test_up_then_down_in_the_same_pool(network):
    client = network
    up = created_ids(post_bundle(client, fixture("up-referral.json")))["ServiceRequest"]
    result = estimate(client, up)
    assert result["ruleSet"] == "gansu" and result["samePool"] is True
    assert result["deductible"]["handling"]["code"] == "continued"
    assert result["deductible"]["rule"] == "gansu:insurance.deductible.upwardSamePool"
    assert result["levelRate"] == {"percent": 80, "tier": 3, "rule": "gansu:insurance.inpatientRates.3"}
    assert result["outOfAreaPenalty"]["points"] == 0
    assert result["reimbursementPercent"] == 80

    down_bundle = fixture("down-referral.json")
    down_bundle["entry"][0]["resource"]["basedOn"] = [{"reference": f"ServiceRequest/{up}"}]
    down = created_ids(post_bundle(client, down_bundle))["ServiceRequest"]
    result = estimate(client, down)
    assert result["deductible"]["handling"]["code"] == "waived"
    assert result["deductible"]["rule"] == "gansu:insurance.deductible.downwardSameEpisode"
    assert result["levelRate"]["tier"] == 1 and result["reimbursementPercent"] == 90
    outpatient = estimate(client, down, setting="outpatient")
    assert outpatient["levelRate"]["rule"] == "gansu:insurance.outpatientRates.1"


def test_out_of_province_without_referral_is_penalised(network):
    client = network
    # a draft (never sent through the referral procedure, no assessment) to a hospital in Sichuan
    draft = reason(route(clone(fixture("up-referral.json")["entry"][0]["resource"]), "up", "within-province",
                         "role-village", "sichuan-hosp"), "C34")
    draft["status"] = "draft"
    response = client.post("/ServiceRequest", json=draft, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    result = estimate(client, response.json()["id"])
    assert result["samePool"] is False
    assert result["deductible"]["handling"]["code"] == "standard"
    assert result["levelRate"]["percent"] == 70
    assert result["outOfAreaPenalty"]["points"] == 20
    assert result["outOfAreaPenalty"]["rule"] == "gansu:insurance.penalties.offsiteUnfiled"
    assert result["reimbursementPercent"] == 50


def test_estimate_needs_a_coverage(network):
    request = clone(fixture("up-referral.json")["entry"][0]["resource"])
    request.pop("insurance")
    response = network.post("/ServiceRequest", json=request, headers=FHIR_JSON)
    answer = network.get(f"/ServiceRequest/{response.json()['id']}/$insurance-estimate")
    assert answer.status_code == 422
    assert network.get("/ServiceRequest/nope/$insurance-estimate").status_code == 404
