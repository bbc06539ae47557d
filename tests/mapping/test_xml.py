"""XML documents: hardened parsing, the CDA referral record and the HL7 v3 patient registration."""

import pytest

from fhir_server.mapping.errors import MappingError
from fhir_server.mapping.ingest import Ingestor
from fhir_server.mapping.xml import MAX_XML_BYTES, parse_xml
from tests.mapping.conftest import sample

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol3;</title></ClinicalDocument>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:9/cda.dtd">
<ClinicalDocument xmlns="urn:hl7-org:v3"/>"""
UTF16_BOMB = BOMB.decode().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16")


@pytest.mark.parametrize("document", [BOMB, EXTERNAL, EXTERNAL_DTD, UTF16_BOMB], ids=["entity-bomb", "external-entity", "external-dtd", "utf16-bomb"])
def test_hostile_xml_is_refused(document):
    with pytest.raises(MappingError) as error:
        parse_xml(document)
    assert error.value.reject and "DOCTYPE" in str(error.value)


def test_malformed_and_oversized_xml():
    with pytest.raises(MappingError, match="not well-formed"):
        parse_xml(b"<ClinicalDocument><title></ClinicalDocument>")
    with pytest.raises(MappingError, match="exceeds"):
        parse_xml(b"<a>" + b" " * MAX_XML_BYTES + b"</a>")


def test_unknown_document_type(converter):
    with pytest.raises(MappingError, match="no XML mapping spec"):
        converter.convert(b'<ClinicalDocument xmlns="urn:hl7-org:v3"><code code="C9999"/></ClinicalDocument>')


def _by_type(result):
    out = {}
    for entry in result.bundle["entry"]:
        out.setdefault(entry["resource"]["resourceType"], []).append(entry)
    return out


def test_cda_referral_record(converter):
    result = converter.convert(sample("cda_referral.xml"))
    assert result.spec_id == "cda_referral" and result.warnings == []
    by_type = _by_type(result)
    patient = by_type["Patient"][0]["resource"]
    assert patient["identifier"] == [{"system": "urn:oid:2.16.156.10011.1.3", "value": "622101199001011234"}]
    assert patient["name"] == [{"text": "李玕"}] and patient["gender"] == "male" and patient["birthDate"] == "1990-01-01"
    assert patient["address"][0]["text"] == "甘肃省兰州市城关区东岗西路88号" and patient["address"][0]["district"] == "城关区"
    assert patient["telecom"] == [{"system": "phone", "value": "13812345678", "use": "mobile"}]
    request = by_type["ServiceRequest"][0]
    assert request["request"]["url"] == "ServiceRequest?identifier=https://fhir.referral.cn/ig/sid/referral-number|ZZ2026112300077"
    body = request["resource"]
    assert body["authoredOn"] == "2026-11-23T10:15:00+08:00"
    assert body["reasonCode"][0]["coding"][0] == {"system": "http://hl7.org/fhir/sid/icd-10", "code": "I21.9", "display": "急性心肌梗死"}
    assert body["note"] == [{"text": "急性胸痛3小时，心电图示ST段抬高，需上级医院介入治疗"}]
    organizations = {o["resource"]["name"]: o["fullUrl"] for o in by_type["Organization"]}
    assert body["requester"] == {"reference": organizations["县人民医院"]}
    assert body["performer"] == [{"reference": organizations["市第一人民医院"]}]
    assert body["reasonReference"] == [{"reference": by_type["Condition"][0]["fullUrl"]}]
    assert by_type["Practitioner"][0]["resource"]["identifier"][0]["value"] == "110620000123"


def test_v3_patient_registration(converter):
    result = converter.convert(sample("v3_patient_add.xml"))
    assert result.spec_id == "v3_patient_registration" and result.control_id == "V3MSG20261123000009"
    [entry] = _by_type(result)["Patient"]
    patient = entry["resource"]
    assert entry["request"]["method"] == "PUT"
    assert [i["system"] for i in patient["identifier"]] == ["urn:oid:2.16.156.10011.1.3", "https://fhir.referral.cn/ig/sid/insurance-card"]
    assert patient["name"] == [{"family": "周", "given": ["桂兰"], "text": "周桂兰", "use": "official"}]
    assert patient["gender"] == "female" and patient["active"] is True
    assert patient["address"][0]["line"] == ["新庄乡", "新庄村3社12号"]
    assert patient["managingOrganization"] == {"reference": _by_type(result)["Organization"][0]["fullUrl"]}


def test_v3_registration_commits(repository, converter):
    response = Ingestor(repository, converter).ingest_xml(sample("v3_patient_add.xml"))
    assert [e["response"]["status"][:3] for e in response["entry"]] == ["201", "201"]
    response = Ingestor(repository, converter).ingest_xml(sample("v3_patient_add.xml"))
    assert [e["response"]["status"][:3] for e in response["entry"]] == ["200", "200"]
