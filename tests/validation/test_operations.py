"""``$validate`` at type and instance level, with ``profile`` and ``mode``."""

import json

from fhir_server.ig.canonical import IG_DIR, url

JSON = {"Content-Type": "application/fhir+json"}
REFERRAL_PROFILE = url("StructureDefinition", "referral-request")


def example(name: str, invalid: bool = False) -> dict:
    folder = IG_DIR / "examples" / ("invalid" if invalid else "")
    return json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))


def test_type_level_validate_of_a_valid_resource(client):
    response = client.post("/ServiceRequest/$validate", json=example("ServiceRequest-referral-up-zhang-san"), headers=JSON)
    assert response.status_code == 200
    assert [i["severity"] for i in response.json()["issue"]] == ["information"]


def test_type_level_validate_reports_profile_errors_with_location(client):
    response = client.post("/ServiceRequest/$validate", json=example("ServiceRequest-bad-direction", invalid=True), headers=JSON)
    assert response.status_code == 200
    errors = [i for i in response.json()["issue"] if i["severity"] == "error"]
    assert errors[0]["expression"] == ["ServiceRequest.extension[0].value.ofType(Coding)"]


def test_profile_parameter_applies_an_unclaimed_profile(client):
    referral = example("ServiceRequest-no-consent", invalid=True)
    referral.pop("meta")
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": referral},
            {"name": "profile", "valueCanonical": REFERRAL_PROFILE},
            {"name": "mode", "valueCode": "profile"},
        ],
    }
    outcome = client.post("/ServiceRequest/$validate", json=parameters, headers=JSON).json()
    assert any("ref-1" in i["diagnostics"] for i in outcome["issue"])


def test_unknown_profile_parameter(client):
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": {"resourceType": "Patient"}},
            {"name": "profile", "valueCanonical": url("StructureDefinition", "nothing")},
        ],
    }
    outcome = client.post("/Patient/$validate", json=parameters, headers=JSON).json()
    assert outcome["issue"][0]["code"] == "not-supported"


def test_structural_errors_are_reported_too(client):
    outcome = client.post("/Patient/$validate", json={"resourceType": "Patient", "gender": 3, "colour": "red"}, headers=JSON).json()
    assert {i["severity"] for i in outcome["issue"]} == {"error"}


def test_instance_level_validates_the_stored_resource(client):
    patient = example("Patient-zhang-san")
    assert client.put("/Patient/zhang-san", json=patient, headers=JSON).status_code == 201
    response = client.get("/Patient/zhang-san/$validate")
    assert response.status_code == 200 and response.json()["issue"][0]["severity"] == "information"
    changed = example("Patient-bad-national-id", invalid=True)
    changed["id"] = "zhang-san"
    outcome = client.post("/Patient/zhang-san/$validate?mode=update", json=changed, headers=JSON).json()
    assert any("pat-1" in i["diagnostics"] for i in outcome["issue"])


def test_update_mode_checks_the_id(client):
    patient = example("Patient-zhang-san")
    client.put("/Patient/zhang-san", json=patient, headers=JSON)
    patient["id"] = "someone-else"
    outcome = client.post("/Patient/zhang-san/$validate?mode=update", json=patient, headers=JSON).json()
    assert outcome["issue"][0]["expression"] == ["id"]


def test_delete_mode(client):
    client.put("/Patient/zhang-san", json=example("Patient-zhang-san"), headers=JSON)
    assert client.get("/Patient/zhang-san/$validate?mode=delete").json()["issue"][0]["severity"] == "information"
    outcome = client.get("/StructureDefinition/referral-request/$validate?mode=delete").json()
    assert outcome["issue"][0]["code"] == "business-rule"
    assert client.get("/Patient/nobody/$validate?mode=delete").status_code == 404


def test_bad_mode_and_missing_resource(client):
    assert client.get("/Patient/$validate?mode=sideways").status_code == 400
    assert client.post("/Patient/$validate", json={"resourceType": "Parameters"}, headers=JSON).status_code == 400
    assert client.post("/Patient/$validate", json={"resourceType": "Organization"}, headers=JSON).status_code == 400


def test_bundle_entries_are_checked_against_their_profiles(client):
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:6f1c2a34-0000-4000-8000-000000000001", "resource": example("Patient-zhang-san")},
            {"fullUrl": "urn:uuid:6f1c2a34-0000-4000-8000-000000000002", "resource": example("Patient-bad-national-id", invalid=True)},
        ],
    }
    outcome = client.post("/Bundle/$validate", json=bundle, headers=JSON).json()
    errors = [i for i in outcome["issue"] if i["severity"] == "error"]
    assert [(e["code"], e["expression"]) for e in errors] == [("invariant", ["Bundle.entry[1].resource"])]
