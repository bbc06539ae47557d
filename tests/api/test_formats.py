"""JSON and XML both ways: Accept, Content-Type, _format, _pretty, and XML read → JSON write equivalence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SPEC = Path(__file__).parent.parent / "fixtures" / "spec"
JSON = {"Content-Type": "application/fhir+json"}
XML = {"Content-Type": "application/fhir+xml"}


def _strip(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k not in ("id", "meta")}


def test_accept_and_format_choose_xml(client):
    created = client.post("/Patient", json={"resourceType": "Patient", "gender": "female"}, headers=JSON).json()
    url = f"/Patient/{created['id']}"
    by_accept = client.get(url, headers={"Accept": "application/fhir+xml"})
    assert by_accept.headers["content-type"].startswith("application/fhir+xml")
    assert b'<gender value="female"/>' in by_accept.content
    by_param = client.get(url + "?_format=xml")
    assert by_param.headers["content-type"].startswith("application/fhir+xml")
    assert client.get(url + "?_format=json").headers["content-type"].startswith("application/fhir+json")


def test_pretty(client):
    created = client.post("/Patient", json={"resourceType": "Patient", "active": True}, headers=JSON).json()
    pretty = client.get(f"/Patient/{created['id']}?_pretty=true").text
    assert "\n  " in pretty
    assert json.loads(pretty) == created


def test_create_from_xml(client):
    body = (b'<Patient xmlns="http://hl7.org/fhir"><name><family value="\xe5\xbc\xa0"/></name>'
            b'<birthDate value="1980-02-03"/></Patient>')
    response = client.post("/Patient", content=body, headers={**XML, "Accept": "application/fhir+json"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == [{"family": "张"}]


@pytest.mark.parametrize("name", sorted(p.stem for p in SPEC.glob("*.json")))
def test_resource_read_as_xml_and_written_back_as_json_is_the_same(client, name):
    original = json.loads((SPEC / f"{name}.json").read_text())
    created = client.post(f"/{original['resourceType']}", json=original, headers=JSON)
    assert created.status_code == 201, created.text
    url = f"/{original['resourceType']}/{created.json()['id']}"
    as_xml = client.get(url, headers={"Accept": "application/fhir+xml"}).content
    rewritten = client.put(url, content=as_xml, headers={**XML, "Accept": "application/fhir+json"})
    assert rewritten.status_code == 200, rewritten.text
    assert _strip(rewritten.json()) == _strip(created.json())


@pytest.mark.parametrize("payload", [
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
    b'<Patient xmlns="http://hl7.org/fhir"><name><family value="&lol2;"/></name></Patient>',
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<Patient xmlns="http://hl7.org/fhir"><name><family value="&xxe;"/></name></Patient>',
    b'<Patient xmlns="http://example.org/not-fhir"/>',
])
def test_hostile_or_foreign_xml_is_refused(client, payload):
    response = client.post("/Patient", content=payload, headers=XML)
    assert response.status_code == 400
    assert b"root:" not in response.content
    assert client.get("/Patient/_history").json()["total"] == 0
