"""ORM^O01, SIU^S12 and the ADT events, value by value."""

from tests.mapping.conftest import sample
from tests.mapping.messages import msh, message, segment


def _resources(result, resource_type):
    return [e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def test_orm_o01_lab_and_pharmacy_orders(converter):
    result = converter.convert(sample("orm_o01_utf8.hl7"))
    [lab] = _resources(result, "ServiceRequest")
    assert lab["code"]["coding"][0] == {"system": "http://loinc.org", "code": "24331-1", "display": "血脂四项"}
    assert lab["priority"] == "routine" and lab["occurrenceDateTime"] == "2026-11-25T08:00:00+08:00"
    assert lab["note"] == [{"text": "空腹采血"}] and lab["identifier"][0]["value"] == "LAB20261124001"
    [drug] = _resources(result, "MedicationRequest")
    assert drug["identifier"][0]["value"] == "RX20261124901"
    assert drug["medicationCodeableConcept"]["coding"][0]["display"] == "阿托伐他汀钙片"
    assert drug["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] == "mg"
    assert "note" not in drug  # the NTE belongs to the lab order's group
    assert result.warnings == []


def test_orm_o01_cancel(converter):
    text = sample("orm_o01_utf8.hl7").decode().replace("ORC|NW|RX2026", "ORC|CA|RX2026")
    [drug] = _resources(converter.convert(text.encode()), "MedicationRequest")
    assert drug["status"] == "cancelled"


def test_siu_s12_appointment(converter):
    result = converter.convert(sample("siu_s12_utf8.hl7"))
    [appointment] = _resources(result, "Appointment")
    assert appointment["status"] == "booked"
    assert appointment["start"] == "2026-12-01T09:00:00+08:00" and appointment["end"] == "2026-12-01T09:30:00+08:00"
    assert appointment["minutesDuration"] == 30 and appointment["comment"] == "转诊患者优先号源"
    assert appointment["appointmentType"]["coding"][0]["code"] == "FOLLOWUP"
    assert [i["value"] for i in appointment["identifier"]] == ["YY20261124001", "HZ8812"]
    patient_url = next(e["fullUrl"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    actors = [p["actor"] for p in appointment["participant"]]
    assert actors[0] == {"reference": patient_url} and actors[2] == {"display": "心内科门诊3诊室 市第一人民医院"}
    assert _resources(result, "Practitioner")[0]["name"][0]["text"] == "王建国"
    assert "AIP-4 ('D^医生') is not mapped by siu_s12" in result.warnings


def test_adt_a01_inpatient_admission(converter):
    result = converter.convert(sample("adt_a01_gbk.hl7"))
    [encounter] = _resources(result, "Encounter")
    assert encounter["class"] == {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}
    assert encounter["status"] == "in-progress" and encounter["period"] == {"start": "2026-11-25T07:55:00+08:00"}
    assert encounter["identifier"] == [{"system": "https://fhir.referral.cn/ig/sid/visit/SDYRMYY", "value": "ZY20261125001"}]
    assert encounter["participant"][0]["individual"] == {"display": "王"}
    assert encounter["hospitalization"]["admitSource"]["coding"][0]["code"] == "7"
    [condition] = _resources(result, "Condition")
    assert condition["verificationStatus"]["coding"][0]["code"] == "provisional"
    [coverage] = _resources(result, "Coverage")
    assert coverage["relationship"]["coding"][0]["code"] == "self"
    entry = next(e for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert entry["request"]["method"] == "PUT"  # ADT owns the demographics: a conditional update


def test_adt_a03_discharge_and_a04_registration(converter):
    def adt(event, extra_pv1):
        pv1 = {1: "1", 2: "O", 19: "V77^^^QXRMYY", **extra_pv1}
        return message(msh(f"ADT^{event}^ADT_A03", f"E-{event}"),
                       segment("PID", {1: "1", 3: "110101198002020021^^^GMSFZ^ID", 5: "赵^敏", 8: "F"}),
                       segment("PV1", pv1)).encode()

    [discharged] = _resources(converter.convert(adt("A03", {45: "20261126173000"})), "Encounter")
    assert discharged["status"] == "finished" and discharged["period"] == {"end": "2026-11-26T17:30:00+08:00"}
    [registered] = _resources(converter.convert(adt("A04", {})), "Encounter")
    assert registered["status"] == "arrived" and registered["class"]["code"] == "AMB"
