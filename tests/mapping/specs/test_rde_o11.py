"""RDE^O11 → MedicationRequest per ORC group; a supply of 4 weeks or more → long-prescription CarePlan."""

from fhir_server.formats.json import loads
from fhir_server.mapping.ingest import Ingestor
from tests.mapping.conftest import sample

FACILITY_LEVEL = "https://fhir.referral.cn/ig/StructureDefinition/facility-level"


def _entries(result, resource_type):
    return [e for e in result.bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def test_medication_requests_per_order_group(converter):
    result = converter.convert(sample("rde_o11_gbk.hl7"))
    long, short = [e["resource"] for e in _entries(result, "MedicationRequest")]
    assert long["identifier"] == [{"system": "https://fhir.referral.cn/ig/sid/order/XZWSY", "value": "RX20261124001"}]
    assert long["medicationCodeableConcept"]["coding"][0] == {
        "system": "https://fhir.referral.cn/ig/sid/drug/XZWSY", "code": "86979474000011", "display": "苯磺酸氨氯地平片"}
    assert long["status"] == "active" and long["intent"] == "order"
    assert long["authoredOn"] == "2026-11-24T10:10:00+08:00"
    assert long["reasonCode"][0]["coding"][0]["code"] == "I10"
    dosage = long["dosageInstruction"][0]
    assert dosage["text"] == "每日一次，每次1片，口服" and dosage["timing"]["code"]["coding"][0]["code"] == "QD"
    assert dosage["route"]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0162", "code": "PO", "display": "口服"}
    assert dosage["doseAndRate"][0]["doseQuantity"] == {"value": 5, "unit": "毫克", "code": "mg", "system": "http://unitsofmeasure.org"}
    dispense = long["dispenseRequest"]
    assert dispense["expectedSupplyDuration"] == {"value": 8, "unit": "wk", "system": "http://unitsofmeasure.org", "code": "wk"}
    assert dispense["quantity"] == {"value": 56, "unit": "片"} and dispense["numberOfRepeatsAllowed"] == 0
    assert dispense["validityPeriod"] == {"start": "2026-11-24", "end": "2027-01-18"}
    assert long["courseOfTherapyType"]["coding"][0]["code"] == "continuous"
    # the 4-day antibiotic in the second ORC group is not a long prescription
    assert short["medicationCodeableConcept"]["coding"][0]["code"] == "86900214000021"
    assert short["dispenseRequest"]["expectedSupplyDuration"]["code"] == "d"
    assert "basedOn" not in short and "courseOfTherapyType" not in short
    assert str(short["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]) == "0.5"  # kept exact


def test_long_prescription_care_plan(converter):
    result = converter.convert(sample("rde_o11_gbk.hl7"))
    [plan_entry] = _entries(result, "CarePlan")
    plan = plan_entry["resource"]
    long = _entries(result, "MedicationRequest")[0]
    assert long["resource"]["basedOn"] == [{"reference": plan_entry["fullUrl"]}]
    assert plan["activity"] == [{"reference": {"reference": long["fullUrl"]}}]
    assert plan["category"][0]["coding"][0]["code"] == "long-prescription" and plan["intent"] == "plan"
    assert plan["period"] == {"start": "2026-11-24", "end": "2027-01-18"}
    assert plan["supportingInfo"] == [{"reference": "Contract?patient:Patient.identifier=urn:oid:2.16.156.10011.1.3|"
                                                    "622101195503031111&status=executed"}]


def _seed_township_patient(repository):
    organization = {"resourceType": "Organization", "name": "新庄乡卫生院",
                    "identifier": [{"system": "https://fhir.referral.cn/ig/sid/medical-institution-licence", "value": "XZWSY"}],
                    "extension": [{"url": FACILITY_LEVEL, "valueCodeableConcept": {"coding": [
                        {"system": "https://fhir.referral.cn/ig/CodeSystem/facility-level", "code": "1"}]}}]}
    repository.create(organization)
    patient = repository.create({"resourceType": "Patient", "identifier": [
        {"system": "urn:oid:2.16.156.10011.1.3", "value": "622101195503031111"}]})
    return patient.record.id


def test_long_prescription_commits_under_the_rules(repository, converter):
    patient_id = _seed_township_patient(repository)
    ingestor = Ingestor(repository, converter)
    # without a signed family-doctor contract the long-prescription rules refuse it
    refused = ingestor.ingest_v2(sample("rde_o11_gbk.hl7"))
    assert refused.code == "AE" and "Contract" in refused.text
    repository.create({"resourceType": "Contract", "status": "executed", "subject": [{"reference": f"Patient/{patient_id}"}]})
    outcome = ingestor.ingest_v2(sample("rde_o11_gbk.hl7"))
    assert outcome.code == "AA", outcome.text
    with repository.store.session() as session:
        [plan] = repository.find(session, "CarePlan", "")
        assert loads(plan.body)["supportingInfo"][0]["reference"].startswith("Contract/")
        assert len(repository.find(session, "MedicationRequest", "")) == 2
