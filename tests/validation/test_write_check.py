"""Validation on write: claimed IG profiles are enforced (422), required ones with require_profiles."""

import json
from dataclasses import replace

import pytest

from fhir_server.config import Settings
from fhir_server.ig.canonical import IG_DIR
from fhir_server.validation.write_check import profile_write_check

JSON = {"Content-Type": "application/fhir+json"}
SUPPORTING = [
    "Organization-lanzhou-consortium",
    "Organization-lanzhou-first-hospital",
    "Organization-chengguan-chc",
    "Practitioner-dr-li",
    "PractitionerRole-dr-li-family-doctor",
    "Patient-zhang-san",
    "Consent-referral-consent-zhang-san",
    "Coverage-coverage-zhang-san",
]


def example(name: str, invalid: bool = False) -> dict:
    folder = IG_DIR / "examples" / ("invalid" if invalid else "")
    return json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))


def put(client, resource: dict):
    return client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource, headers=JSON)


@pytest.fixture
def supported(client):
    """The organisations, people, consent and coverage a referral refers to."""
    for name in SUPPORTING:
        assert put(client, example(name)).status_code == 201, name
    return client


def test_check_validates_claimed_profiles_only():
    check = profile_write_check(Settings())
    patient = example("Patient-bad-national-id", invalid=True)
    assert any("pat-1" in i["diagnostics"] for i in check(None, "Patient", patient, None))
    patient.pop("meta")
    assert check(None, "Patient", patient, None) == []


def test_valid_referral_is_stored(supported):
    assert put(supported, example("ServiceRequest-referral-up-zhang-san")).status_code == 201


def test_invalid_resource_is_rejected_with_the_issue(client):
    response = client.post("/Patient", json=example("Patient-bad-national-id", invalid=True), headers=JSON)
    assert response.status_code == 422
    [problem] = [i for i in response.json()["issue"] if i["code"] == "invariant"]
    assert problem["expression"] == ["Patient"] and "pat-1" in problem["diagnostics"]
    assert client.get("/Patient").json()["total"] == 0


def test_warnings_are_returned_beside_a_successful_write(supported):
    coverage = example("Coverage-coverage-zhang-san")
    coverage["extension"][0]["valueCoding"]["code"] = "999999"
    response = supported.put("/Coverage/coverage-zhang-san", json=coverage, headers={**JSON, "Prefer": "return=OperationOutcome"})
    assert response.status_code == 200
    assert any(i["severity"] == "warning" and i["code"] == "code-invalid" for i in response.json()["issue"])


def test_transaction_with_an_invalid_entry_stores_nothing(client):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": example("Organization-lanzhou-consortium"), "request": {"method": "PUT", "url": "Organization/lanzhou-consortium"}},
            {"resource": example("Patient-bad-national-id", invalid=True), "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    assert client.post("/", json=bundle, headers=JSON).status_code == 422
    assert client.get("/Organization/lanzhou-consortium").status_code == 404


def test_unclaimed_resource_is_accepted_by_default(client):
    patient = example("Patient-bad-national-id", invalid=True)
    patient.pop("meta")
    assert client.post("/Patient", json=patient, headers=JSON).status_code == 201


class TestRequiredProfiles:
    @pytest.fixture
    def settings(self, settings):
        return replace(settings, require_profiles=True)

    def test_unclaimed_referral_is_checked_against_the_ig_profile(self, supported):
        referral = example("ServiceRequest-no-direction-wrong-intent", invalid=True)
        referral.pop("meta")
        response = supported.post("/ServiceRequest", json=referral, headers=JSON)
        assert response.status_code == 422
        assert any(i.get("expression") == ["ServiceRequest.intent"] for i in response.json()["issue"])

    def test_conforming_referral_without_a_claim_is_accepted(self, supported):
        referral = example("ServiceRequest-referral-up-zhang-san")
        referral.pop("meta")
        assert put(supported, referral).status_code == 201

    def test_other_types_are_not_required_to_conform(self, client):
        assert client.post("/Patient", json={"resourceType": "Patient"}, headers=JSON).status_code == 201
