"""REF^I12 → ServiceRequest + Task and what they reference, value by value, in GBK and UTF-8."""

import base64
import json

import pytest

from fhir_server.mapping.errors import MappingError
from tests.mapping.conftest import sample

REFERRAL = "https://fhir.referral.cn/ig/sid/referral-number"


def _by_type(bundle):
    out = {}
    for entry in bundle["entry"]:
        out.setdefault(entry["resource"]["resourceType"], []).append(entry)
    return out


@pytest.fixture(params=["ref_i12_gbk.hl7", "ref_i12_utf8.hl7"])
def ref(request, converter):
    return converter.convert(sample(request.param))


def test_patient(ref):
    [entry] = _by_type(ref.bundle)["Patient"]
    patient = entry["resource"]
    assert entry["request"] == {"method": "POST", "url": "Patient",
                                "ifNoneExist": "identifier=urn:oid:2.16.156.10011.1.3|622101199001011234"}
    assert [(i["system"], i["value"]) for i in patient["identifier"]] == [
        ("urn:oid:2.16.156.10011.1.3", "622101199001011234"),
        ("https://fhir.referral.cn/ig/sid/mrn/QXRMYY", "QX00012345"),
        ("https://fhir.referral.cn/ig/sid/insurance-card", "6221019001"),
    ]
    assert patient["identifier"][1]["type"]["coding"][0]["code"] == "MR"
    # 玕 and 瑋 carry "\" and "|" as their second GBK byte
    assert patient["name"] == [{"family": "李", "given": ["玕"], "text": "李玕"}]
    assert patient["birthDate"] == "1990-01-01" and patient["gender"] == "male"
    [address] = patient["address"]
    assert address["line"][1] == "3单元502室" and address["city"] == "兰州市" and address["state"] == "甘肃省"
    assert address["postalCode"] == "730000" and address["use"] == "home"
    assert patient["telecom"] == [{"system": "phone", "value": "13812345678", "use": "home"},
                                  {"system": "phone", "value": "09318765432", "use": "home"}]
    assert patient["maritalStatus"]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                                                     "code": "M", "display": "Married"}


def test_hex_escape_is_decoded_in_the_message_charset(converter):
    # 东 is written as \XB6AB\ (GB18030 bytes) in one message and \XE4B89C\ (UTF-8 bytes) in the other
    for name in ("ref_i12_gbk.hl7", "ref_i12_utf8.hl7"):
        patient = _by_type(converter.convert(sample(name)).bundle)["Patient"][0]["resource"]
        assert patient["address"][0]["line"][0] == "甘肃省兰州市城关区东岗西路88号"
        assert patient["address"][0]["text"] == "甘肃省兰州市城关区东岗西路88号3单元502室"


def test_service_request(ref):
    by_type = _by_type(ref.bundle)
    [entry] = by_type["ServiceRequest"]
    request = entry["resource"]
    assert entry["request"] == {"method": "PUT", "url": f"ServiceRequest?identifier={REFERRAL}|ZZ2026112300001"}
    assert request["identifier"][0] == {"system": REFERRAL, "value": "ZZ2026112300001"}
    assert request["identifier"][1]["value"] == "QX-EXT-88"
    assert request["status"] == "active" and request["intent"] == "order" and request["priority"] == "routine"
    assert request["category"][0]["coding"][0]["code"] == "3457005"
    assert request["code"]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0281", "code": "Med",
                                            "display": "医疗转诊"}
    assert request["authoredOn"] == "2026-11-23T09:30:00+08:00"
    assert request["occurrencePeriod"] == {"end": "2026-12-23"}  # date-only stays a date
    assert request["reasonCode"][0]["coding"][0]["code"] == "S"
    assert request["note"] == [{"text": "血压控制不佳&血糖波动，建议上级医院调整用药"}]
    full_urls = {"Organization/" + e["resource"]["name"]: e["fullUrl"] for e in by_type["Organization"]}
    patient_url = by_type["Patient"][0]["fullUrl"]
    assert request["subject"] == {"reference": patient_url}
    assert request["requester"] == {"reference": full_urls["Organization/县人民医院"]}
    assert request["performer"][0] == {"reference": full_urls["Organization/市第一人民医院"]}
    assert len(request["reasonReference"]) == 2
    assert {e["fullUrl"] for e in by_type["Condition"]} == {r["reference"] for r in request["reasonReference"]}
    assert request["insurance"] == [{"reference": by_type["Coverage"][0]["fullUrl"]}]
    extensions = {e["url"].rsplit("/", 1)[1]: e for e in request["extension"]}
    assert extensions["referral-direction"]["valueCoding"]["code"] == "up"
    assert extensions["consent-reference"]["valueReference"] == {"reference": by_type["Consent"][0]["fullUrl"]}


def test_task(ref):
    by_type = _by_type(ref.bundle)
    [entry] = by_type["Task"]
    task = entry["resource"]
    assert entry["request"]["method"] == "PUT"
    assert task["status"] == "requested" and task["intent"] == "order"
    assert task["businessStatus"]["coding"][0]["code"] == "submitted"
    assert task["focus"] == {"reference": by_type["ServiceRequest"][0]["fullUrl"]}
    assert task["for"] == {"reference": by_type["Patient"][0]["fullUrl"]}
    assert task["restriction"] == {"period": {"end": "2026-12-23"}}


def test_practitioners_organizations_conditions_coverage_consent(ref):
    by_type = _by_type(ref.bundle)
    names = sorted(p["resource"]["name"][0]["text"] for p in by_type["Practitioner"])
    assert names == ["王建国", "陈瑋"]
    chen = next(p["resource"] for p in by_type["Practitioner"] if p["resource"]["name"][0]["text"] == "陈瑋")
    assert chen["identifier"] == [{"system": "https://fhir.referral.cn/ig/sid/physician-licence", "value": "110620000123"}]
    assert chen["name"][0]["prefix"] == ["主治医师"] and chen["telecom"][0]["use"] == "work"
    codes = [c["resource"]["code"]["coding"][0] for c in by_type["Condition"]]
    assert codes[0] == {"system": "http://hl7.org/fhir/sid/icd-10", "code": "I21.9", "display": "急性心肌梗死"}
    verification = [c["resource"]["verificationStatus"]["coding"][0]["code"] for c in by_type["Condition"]]
    assert verification == ["confirmed", "provisional"]
    coverage = by_type["Coverage"][0]["resource"]
    assert coverage["subscriberId"] == "6221019001" and coverage["period"] == {"start": "2026-01-01", "end": "2026-12-31"}
    assert coverage["relationship"]["coding"][0]["code"] == "self"
    assert coverage["class"][0]["value"] == "390" and coverage["class"][0]["name"] == "城乡居民基本医疗保险"
    payer = [o for o in by_type["Organization"] if o["resource"]["name"] == "兰州市医疗保障局"][0]
    assert coverage["payor"] == [{"reference": payer["fullUrl"]}]
    consent = by_type["Consent"][0]["resource"]
    assert consent["dateTime"] == "2026-11-23T09:15:00+08:00" and consent["status"] == "active"


def test_unmapped_fields_are_reported(ref):
    assert "PV1-7 ('D001^张^三') is not mapped by ref_i12" in ref.warnings
    assert any(w.startswith("ZRF-3") for w in ref.warnings)


def test_same_message_maps_to_the_same_bundle(converter):
    first = converter.convert(sample("ref_i12_gbk.hl7")).bundle
    assert converter.convert(sample("ref_i12_gbk.hl7")).bundle == first


def test_missing_optional_segments(converter):
    text = sample("ref_i12_utf8.hl7").decode("utf-8")
    kept = [line for line in text.split("\n") if line[:3] in ("MSH", "RF1", "PID")]
    result = converter.convert("\r".join(kept).encode("utf-8"))
    types = sorted(e["resource"]["resourceType"] for e in result.bundle["entry"])
    assert types == ["Patient", "ServiceRequest", "Task"]
    request = _by_type(result.bundle)["ServiceRequest"][0]["resource"]
    assert "requester" not in request and "reasonReference" not in request


def test_missing_referral_number_is_an_error(converter):
    text = sample("ref_i12_utf8.hl7").decode("utf-8").replace("|ZZ2026112300001|", "||")
    with pytest.raises(MappingError) as error:
        converter.convert(text.encode("utf-8"))
    assert error.value.code == "101" and error.value.location == "RF1-6" and not error.value.reject


def test_invalid_date_is_an_error(converter):
    text = sample("ref_i12_utf8.hl7").decode("utf-8").replace("|20261123093000|20261223|", "|20261332093000|20261223|")
    with pytest.raises(MappingError) as error:
        converter.convert(text.encode("utf-8"))
    assert error.value.code == "102" and error.value.location == "RF1-7"
