"""The IG's SearchParameters find referrals by their extensions (direction, scope, consortium, ...)."""

import json

from fhir_server.ig.canonical import IG_DIR, url

JSON = {"Content-Type": "application/fhir+json"}


def example(name: str) -> dict:
    return json.loads((IG_DIR / "examples" / f"{name}.json").read_text(encoding="utf-8"))


def _ids(client, query: str) -> list[str]:
    response = client.get(query)
    assert response.status_code == 200, response.text
    return sorted(e["resource"]["id"] for e in response.json().get("entry", []))


def test_search_referrals_by_ig_extensions(client):
    up, down = example("ServiceRequest-referral-up-zhang-san"), example("ServiceRequest-referral-down-zhang-san")
    for referral in (up, down):
        # stored without the profile claim so this test exercises search, not the referral workflow rules
        referral.pop("meta")
        referral["extension"] = [e for e in referral["extension"] if "consent" not in e["url"]]
        referral["status"] = "draft"
        assert client.put(f"/ServiceRequest/{referral['id']}", json=referral, headers=JSON).status_code == 201
    direction = url("CodeSystem", "referral-direction")
    assert _ids(client, "/ServiceRequest?direction=up") == [up["id"]]
    assert _ids(client, f"/ServiceRequest?direction={direction}|down") == [down["id"]]
    assert _ids(client, "/ServiceRequest?scope=within-consortium") == sorted([up["id"], down["id"]])
    assert _ids(client, "/ServiceRequest?scope=cross-province") == []
    assert _ids(client, "/ServiceRequest?consortium=Organization/lanzhou-consortium") == sorted([up["id"], down["id"]])
    assert _ids(client, "/ServiceRequest?reserved-resource=outpatient-slot") == [up["id"]]


def test_search_coverage_by_insured_region(client):
    coverage = example("Coverage-coverage-offsite")
    coverage.pop("meta")
    assert client.put("/Coverage/coverage-offsite", json=coverage, headers=JSON).status_code == 201
    assert _ids(client, "/Coverage?insured-region=621100") == ["coverage-offsite"]
    assert _ids(client, "/Coverage?offsite-place=110000") == ["coverage-offsite"]
