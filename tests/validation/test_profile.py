"""The StructureDefinition-driven validator, rule by rule, on the IG's examples."""

import copy
import json

import pytest

from fhir_server.ig.canonical import IG_DIR, url
from fhir_server.terminology.registry import Terminology
from fhir_server.validation.ig import ig_validator
from fhir_server.validation.profile import ProfileValidator

EXAMPLES = IG_DIR / "examples"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture
def referral():
    return example("ServiceRequest-referral-up-zhang-san")


def issues_at(issues, expression):
    return [i for i in issues if expression in i.get("expression", [])]


def test_claimed_profile_is_applied_and_unclaimed_is_not(referral):
    referral["intent"] = "proposal"
    assert issues_at(ig_validator().validate(referral), "ServiceRequest.intent")
    referral.pop("meta")
    assert ig_validator().validate(referral) == []
    assert ig_validator().validate(referral, [url("StructureDefinition", "referral-request")])


def test_unknown_ig_profile_is_an_error(referral):
    referral["meta"]["profile"] = [url("StructureDefinition", "no-such-profile")]
    [problem] = ig_validator().validate(referral)
    assert problem["code"] == "not-supported" and problem["expression"] == ["ServiceRequest.meta.profile"]


def test_profile_for_another_type_is_an_error(referral):
    [problem] = ig_validator().validate(referral, [url("StructureDefinition", "cn-patient")])
    assert problem["code"] == "invalid"


def test_cardinality_max(referral):
    referral["extension"].append(copy.deepcopy(referral["extension"][0]))
    [problem] = ig_validator().validate(referral)
    assert problem["code"] == "structure" and "ServiceRequest.extension:direction" in problem["diagnostics"]


def test_pattern_slice_minimum(referral):
    referral["category"] = [{"coding": [{"system": "http://snomed.info/sct", "code": "103696004"}]}]
    [problem] = ig_validator().validate(referral)
    assert problem["code"] == "required" and "category:referral" in problem["diagnostics"]
    assert problem["expression"] == ["ServiceRequest.category"]


def test_value_slice_on_identifier_system():
    patient = example("Patient-zhang-san")
    patient["identifier"].append({"system": "urn:oid:2.16.156.10011.1.3", "value": "110105194912310021"})
    problems = ig_validator().validate(patient)
    assert any("identifier:nationalId: max allowed = 1" in p["diagnostics"] for p in problems)


def test_closed_slicing_rejects_unmatched_values():
    organization = example("Organization-lanzhou-first-hospital")
    coding = organization["extension"][0]["valueCodeableConcept"]["coding"]
    coding.append({"system": "http://example.org/other-grading", "code": "x"})
    problems = ig_validator().validate(organization)
    assert any(p["code"] == "structure" and "slicing is closed" in p["diagnostics"] for p in problems)
    assert problems[0]["expression"] == ["Organization.extension[0].value.ofType(CodeableConcept).coding[2]"]


def test_extensible_binding_is_a_warning():
    coverage = example("Coverage-coverage-zhang-san")
    coverage["extension"][0]["valueCoding"]["code"] = "999999"
    [problem] = ig_validator().validate(coverage)
    assert (problem["severity"], problem["code"]) == ("warning", "code-invalid")


def test_required_binding_on_a_base_code(referral):
    referral["priority"] = "whenever"
    [problem] = ig_validator().validate(referral)
    assert (problem["severity"], problem["code"], problem["expression"]) == ("error", "code-invalid", ["ServiceRequest.priority"])


def test_unknown_external_code_system_does_not_fail(referral):
    # the referral-reason value set is the IG's ICD-10 subset: a SNOMED code is outside it (extensible → warning),
    # while the SNOMED category pattern stays valid although SNOMED is not held by the server
    referral["reasonCode"] = [{"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]}]
    problems = ig_validator().validate(referral)
    assert [p["severity"] for p in problems] == ["warning"]


def test_reference_to_contained_resource_is_typed(referral):
    referral["contained"] = [{"resourceType": "Group", "id": "g", "type": "person", "actual": True}]
    referral["subject"] = {"reference": "#g"}
    [problem] = ig_validator().validate(referral)
    assert problem["expression"] == ["ServiceRequest.subject"] and "Group" in problem["diagnostics"]


def test_absolute_reference_is_typed(referral):
    referral["requester"] = {"reference": "https://other.example.cn/fhir/Practitioner/9"}
    [problem] = ig_validator().validate(referral)
    assert problem["expression"] == ["ServiceRequest.requester"]


def test_extension_value_type_must_be_allowed(referral):
    referral["extension"][0] = {"url": referral["extension"][0]["url"], "valueString": "up"}
    problems = ig_validator().validate(referral)
    assert any(p["expression"] == ["ServiceRequest.extension[0].value.ofType(string)"] for p in problems)


def test_foreign_extensions_are_left_alone(referral):
    referral["extension"].append({"url": "http://example.org/fhir/StructureDefinition/local", "valueString": "x"})
    assert ig_validator().validate(referral) == []


def test_active_referral_with_exemption_instead_of_consent_is_valid(referral):
    referral["extension"][2] = {
        "url": url("StructureDefinition", "consent-exemption"),
        "extension": [{"url": "reason", "valueCodeableConcept": {"coding": [{"system": url("CodeSystem", "consent-exemption-reason"), "code": "emergency"}]}}],
    }
    assert ig_validator().validate(referral) == []


def test_draft_referral_needs_no_consent(referral):
    referral["status"] = "draft"
    del referral["extension"][2]
    assert ig_validator().validate(referral) == []


def test_invariant_error_in_expression_is_reported():
    sd = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/p",
        "kind": "resource",
        "type": "Patient",
        "derivation": "constraint",
        "snapshot": {
            "element": [
                {
                    "id": "Patient",
                    "path": "Patient",
                    "min": 0,
                    "max": "*",
                    "constraint": [{"key": "t-1", "severity": "warning", "human": "has a name", "expression": "name.exists()", "source": "http://example.org/StructureDefinition/p"}],
                }
            ]
        },
    }
    validator = ProfileValidator([sd], Terminology(), "http://example.org")
    [problem] = validator.validate({"resourceType": "Patient"}, ["http://example.org/StructureDefinition/p"])
    assert (problem["severity"], problem["code"], problem["expression"]) == ("warning", "invariant", ["Patient"])
    assert validator.validate({"resourceType": "Patient", "name": [{"text": "x"}]}, ["http://example.org/StructureDefinition/p"]) == []


def test_type_discriminator_on_a_choice_element():
    sd = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/bp",
        "kind": "resource",
        "type": "Observation",
        "derivation": "constraint",
        "snapshot": {
            "element": [
                {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
                {
                    "id": "Observation.value[x]",
                    "path": "Observation.value[x]",
                    "min": 0,
                    "max": "1",
                    "base": {"path": "Observation.value[x]", "min": 0, "max": "1"},
                    "type": [{"code": "Quantity"}, {"code": "string"}],
                    "slicing": {"discriminator": [{"type": "type", "path": "$this"}], "rules": "closed"},
                },
                {
                    "id": "Observation.value[x]:valueQuantity",
                    "path": "Observation.value[x]",
                    "sliceName": "valueQuantity",
                    "min": 1,
                    "max": "1",
                    "base": {"path": "Observation.value[x]", "min": 0, "max": "1"},
                    "type": [{"code": "Quantity"}],
                },
            ]
        },
    }
    validator = ProfileValidator([sd], Terminology(), "http://example.org")
    profile = ["http://example.org/StructureDefinition/bp"]
    assert validator.validate({"resourceType": "Observation", "valueQuantity": {"value": 120}}, profile) == []
    problems = validator.validate({"resourceType": "Observation", "valueString": "120/80"}, profile)
    assert {p["code"] for p in problems} == {"required", "structure"}
    assert any(p["expression"] == ["Observation.value.ofType(string)"] for p in problems)
