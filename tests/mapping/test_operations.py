"""$convert and $ingest over HTTP."""

import base64

from fastapi.testclient import TestClient

from fhir_server.app import create_app
from tests.mapping.conftest import sample, seed_members

HL7 = {"Content-Type": "x-application/hl7-v2+er7"}


def _client(settings, store):
    app = create_app(settings, store)
    seed_members(app.state.repository)
    return TestClient(app)


def _param(parameters: dict, name: str):
    return next(p for p in parameters["parameter"] if p["name"] == name)


def test_convert_returns_the_bundle_and_stores_nothing(settings, store):
    with _client(settings, store) as client:
        response = client.post("/$convert", content=sample("ref_i12_gbk.hl7"), headers=HL7)
        assert response.status_code == 200, response.text
        body = response.json()
        bundle = _param(body, "return")["resource"]
        assert bundle["type"] == "transaction"
        assert {e["resource"]["resourceType"] for e in bundle["entry"]} >= {"Patient", "ServiceRequest", "Task"}
        warnings = [i["diagnostics"] for i in _param(body, "issues")["resource"]["issue"]]
        assert any("PV1-7" in w for w in warnings)
        assert client.get("/ServiceRequest").json().get("entry", []) == []


def test_convert_accepts_parameters_with_base64(settings, store):
    with _client(settings, store) as client:
        parameters = {"resourceType": "Parameters", "parameter": [
            {"name": "message", "valueBase64Binary": base64.b64encode(sample("ref_i12_gbk.hl7")).decode()},
            {"name": "charset", "valueCode": "gb18030"}]}
        response = client.post("/$convert", json=parameters, headers={"Content-Type": "application/fhir+json"})
        assert response.status_code == 200, response.text
        patient = next(e["resource"] for e in _param(response.json(), "return")["resource"]["entry"]
                       if e["resource"]["resourceType"] == "Patient")
        assert patient["name"][0]["text"] == "李玕"


def test_ingest_commits_and_answers_with_the_ack(settings, store):
    with _client(settings, store) as client:
        response = client.post("/$ingest", content=sample("ref_i12_gbk.hl7"), headers=HL7)
        assert response.status_code == 200, response.text
        assert "MSA|AA|QX20261123000001" in _param(response.json(), "ack")["valueString"]
        found = client.get("/ServiceRequest?identifier=https://fhir.referral.cn/ig/sid/referral-number|ZZ2026112300001")
        assert found.json()["total"] == 1
        again = client.post("/$ingest", content=sample("ref_i12_gbk.hl7"), headers=HL7)
        assert "already processed" in _param(again.json(), "ack")["valueString"]


def test_bad_messages_answer_with_an_operation_outcome(settings, store):
    with _client(settings, store) as client:
        unknown = client.post("/$ingest", content=b"MSH|^~\\&|HIS|X|||20261123||ZZZ^Z01|C1|P|2.5\r", headers=HL7)
        assert unknown.status_code == 400 and unknown.json()["resourceType"] == "OperationOutcome"
        assert "not supported" in unknown.json()["issue"][0]["diagnostics"]
        no_consent = sample("ref_i12_utf8.hl7").decode().replace("|20261123091500", "").encode()
        refused = client.post("/$ingest", content=no_consent, headers=HL7)
        assert refused.status_code == 422 and "consent" in refused.text
        assert client.get("/Patient").json().get("entry", []) == []
        empty = client.post("/$convert", content=b"", headers=HL7)
        assert empty.status_code == 400


def test_xml_documents_over_http(settings, store):
    with _client(settings, store) as client:
        converted = client.post("/$convert", content=sample("cda_referral.xml"), headers={"Content-Type": "text/xml"})
        assert converted.status_code == 200, converted.text
        bundle = _param(converted.json(), "return")["resource"]
        assert any(e["resource"]["resourceType"] == "ServiceRequest" for e in bundle["entry"])
        registered = client.post("/$ingest", content=sample("v3_patient_add.xml"), headers={"Content-Type": "text/xml"})
        assert registered.status_code == 200, registered.text
        assert client.get("/Patient?identifier=urn:oid:2.16.156.10011.1.3|622101195503031111").json()["total"] == 1
        bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>'
        refused = client.post("/$ingest", content=bomb, headers={"Content-Type": "text/xml"})
        assert refused.status_code == 400 and "DOCTYPE" in refused.text


def test_the_mapping_conceptmaps_are_served(settings, store):
    with _client(settings, store) as client:
        found = client.get("/ConceptMap?url=https://fhir.referral.cn/ig/ConceptMap/v2-0001-to-administrative-gender").json()
        assert found["total"] == 1
        conceptmap = found["entry"][0]["resource"]
        assert conceptmap["group"][0]["element"][0] == {"code": "M", "target": [{"code": "male", "display": "Male", "equivalence": "equivalent"}]}
