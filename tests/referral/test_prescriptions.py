"""Long prescriptions: supply weeks (Gansu 4–12), eligible conditions, family-doctor contract, prescriber."""

from __future__ import annotations

from tests.referral.conftest import FHIR_JSON
from tests.referral.test_rules import IG, fired


def plan(client, with_contract: bool = True) -> str:
    contract = {"resourceType": "Contract", "id": "fd-contract", "status": "executed",
                "subject": [{"reference": "Patient/zhang-san"}], "issued": "2026-01-05T00:00:00+08:00",
                "type": {"text": "家庭医生签约服务协议"}}
    assert client.put("/Contract/fd-contract", json=contract, headers=FHIR_JSON).status_code in (200, 201)
    care_plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                 "category": [{"coding": [{"system": f"{IG}/CodeSystem/care-plan-category", "code": "long-prescription"}]}],
                 "subject": {"reference": "Patient/zhang-san"},
                 "period": {"start": "2026-11-28", "end": "2027-02-20"},
                 "author": {"reference": "PractitionerRole/role-township"},
                 "addresses": [{"display": "高血压"}]}
    if with_contract:
        care_plan["supportingInfo"] = [{"reference": "Contract/fd-contract"}]
    response = client.post("/CarePlan", json=care_plan, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return f"CarePlan/{response.json()['id']}"


def prescription(plan_ref: str, weeks: float = 8, condition: str = "I10", prescriber: str = "role-township",
                 drug: str = "C08CA01") -> dict:
    return {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": drug}]},
            "subject": {"reference": "Patient/zhang-san"}, "authoredOn": "2026-11-28T10:00:00+08:00",
            "requester": {"reference": f"PractitionerRole/{prescriber}"},
            "reasonCode": [{"coding": [{"system": f"{IG}/CodeSystem/icd-10-cn", "code": condition}]}],
            "basedOn": [{"reference": plan_ref}],
            "courseOfTherapyType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                                                "code": "continuous"}]},
            "dispenseRequest": {"validityPeriod": {"start": "2026-11-28", "end": "2027-02-20"},
                                "expectedSupplyDuration": {"value": weeks, "unit": "weeks",
                                                           "system": "http://unitsofmeasure.org", "code": "wk"}}}


def prescribe(client, resource: dict):
    return client.post("/MedicationRequest", json=resource, headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})


def test_long_prescription_rules(network):
    client = network
    signed = plan(client)
    ok = prescribe(client, prescription(signed))
    assert ok.status_code == 201 and fired(ok) == {}
    assert prescribe(client, prescription(signed, weeks=12)).status_code == 201

    too_long = prescribe(client, prescription(signed, weeks=14))
    assert too_long.status_code == 422 and fired(too_long) == {"long-prescription-duration": "error"}
    too_short = prescribe(client, prescription(signed, weeks=2))  # Gansu: at least 4 weeks
    assert fired(too_short) == {"long-prescription-duration": "error"}

    not_chronic = prescribe(client, prescription(signed, condition="J18"))
    assert fired(not_chronic) == {"long-prescription-condition": "error"}
    subcode = prescribe(client, prescription(signed, condition="E11.9"))
    assert subcode.status_code == 201

    unsigned = prescribe(client, prescription(plan(client, with_contract=False)))
    assert fired(unsigned) == {"long-prescription-contract": "error"}

    upper = prescribe(client, prescription(signed, prescriber="role-county-attending"))
    assert fired(upper) == {"long-prescription-prescriber": "error"}
    catalogue = prescribe(client, prescription(signed, prescriber="role-county-attending", drug="C09CA01"))
    assert catalogue.status_code == 201, catalogue.text


def test_ordinary_prescriptions_are_not_judged(network):
    ordinary = prescription("CarePlan/none", weeks=30)
    ordinary.pop("basedOn")
    assert prescribe(network, ordinary).status_code == 201
