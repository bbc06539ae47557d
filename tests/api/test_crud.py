"""Create, read, vread, update, patch and delete over HTTP, with versioning headers."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

import pytest

from fhir_server.api.negotiation import http_date

JSON = {"Content-Type": "application/fhir+json"}


def patient(**extra) -> dict:
    return {"resourceType": "Patient", "name": [{"family": "张", "given": ["三"]}], **extra}


def test_create_sets_id_meta_and_headers(client):
    response = client.post("/Patient", json=patient(id="client-chosen"), headers=JSON)
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == f"http://testserver/Patient/{body['id']}/_history/1"
    assert response.headers["last-modified"].endswith("GMT")
    assert response.headers["content-type"].startswith("application/fhir+json")


def test_read_returns_what_was_created(client):
    created = client.post("/Patient", json=patient(gender="female"), headers=JSON).json()
    response = client.get(f"/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["etag"] == 'W/"1"'


def test_read_unknown_is_404_with_outcome(client):
    response = client.get("/Patient/does-not-exist")
    assert response.status_code == 404
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-found"


def test_unknown_type_is_404(client):
    assert client.get("/Patientt/1").status_code == 404
    assert client.post("/NotAType", json={"resourceType": "NotAType"}).status_code == 404


def test_update_creates_with_client_id_then_versions(client):
    first = client.put("/Patient/p1", json=patient(id="p1"), headers=JSON)
    assert first.status_code == 201
    assert first.json()["meta"]["versionId"] == "1"
    second = client.put("/Patient/p1", json=patient(id="p1", gender="male"), headers=JSON)
    assert second.status_code == 200
    assert second.json()["meta"]["versionId"] == "2"
    assert second.headers["etag"] == 'W/"2"'
    assert second.headers["location"].endswith("/Patient/p1/_history/2")
    assert client.get("/Patient/p1/_history/1").json().get("gender") is None
    assert client.get("/Patient/p1/_history/2").json()["gender"] == "male"
    assert client.get("/Patient/p1/_history/3").status_code == 404


def test_update_id_mismatch_and_missing_id_are_400(client):
    assert client.put("/Patient/p1", json=patient(id="other"), headers=JSON).status_code == 400
    assert client.put("/Patient/p1", json=patient(), headers=JSON).status_code == 400
    assert client.get("/Patient/p1").status_code == 404


def test_if_match(client):
    client.put("/Patient/p1", json=patient(id="p1"), headers=JSON)
    stale = client.put("/Patient/p1", json=patient(id="p1", gender="male"), headers={**JSON, "If-Match": 'W/"7"'})
    assert stale.status_code == 412
    assert client.get("/Patient/p1").json()["meta"]["versionId"] == "1"
    fresh = client.put("/Patient/p1", json=patient(id="p1", gender="male"), headers={**JSON, "If-Match": 'W/"1"'})
    assert fresh.status_code == 200
    assert client.put("/Patient/p1", json=patient(id="p1"), headers={**JSON, "If-Match": "garbage"}).status_code == 400


def test_if_none_match_on_read_gives_304(client):
    created = client.post("/Patient", json=patient(), headers=JSON).json()
    url = f"/Patient/{created['id']}"
    response = client.get(url, headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304
    assert response.headers["ETag"] == 'W/"1"' and response.content == b""
    for current in ('"1"', 'W/"3", W/"1"', "*"):  # weak comparison, a list, any version
        assert client.get(url, headers={"If-None-Match": current}).status_code == 304, current
    assert client.get(url, headers={"If-None-Match": 'W/"2"'}).status_code == 200
    client.put(url, json={**patient(), "id": created["id"], "gender": "male"}, headers=JSON)
    stale = client.get(url, headers={"If-None-Match": 'W/"1"'})
    assert stale.status_code == 200 and stale.json()["gender"] == "male"
    assert client.get(f"{url}/_history/1", headers={"If-None-Match": 'W/"1"'}).status_code == 304


def test_last_modified_is_meta_last_updated_as_an_http_date(client):
    created = client.post("/Patient", json=patient(), headers=JSON)
    stamp = datetime.fromisoformat(created.json()["meta"]["lastUpdated"].replace("Z", "+00:00"))
    header = created.headers["Last-Modified"]
    assert header == format_datetime(stamp.replace(microsecond=0), usegmt=True)
    assert client.get(created.headers["Location"].split("/_history")[0]).headers["Last-Modified"] == header
    assert http_date("2026-01-01T07:20:30.5+08:00") == "Wed, 31 Dec 2025 23:20:30 GMT"


def test_if_modified_since_on_read(client):
    created = client.post("/Patient", json=patient(), headers=JSON)
    url = f"/Patient/{created.json()['id']}"
    last_modified = created.headers["Last-Modified"]
    assert client.get(url, headers={"If-Modified-Since": last_modified}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}).status_code == 200
    assert client.get(url, headers={"If-Modified-Since": "not a date"}).status_code == 200
    # If-None-Match, when present, decides alone
    both = {"If-Modified-Since": last_modified, "If-None-Match": 'W/"9"'}
    assert client.get(url, headers=both).status_code == 200


def test_delete_then_read_is_gone(client):
    created = client.post("/Patient", json=patient(), headers=JSON).json()
    url = f"/Patient/{created['id']}"
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 410
    assert client.delete(url).status_code == 204  # deleting again is harmless
    assert client.get(f"{url}/_history/2").status_code == 410
    assert client.get(f"{url}/_history/1").status_code == 200
    recreated = client.put(url, json={**patient(), "id": created["id"]}, headers=JSON)
    assert recreated.status_code == 201
    assert recreated.json()["meta"]["versionId"] == "3"


def test_patch(client):
    created = client.post("/Patient", json=patient(), headers=JSON).json()
    url = f"/Patient/{created['id']}"
    ops = b'[{"op":"add","path":"/active","value":true},{"op":"replace","path":"/name/0/family","value":"li"}]'
    response = client.patch(url, content=ops, headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True and body["name"][0]["family"] == "li"
    assert body["meta"]["versionId"] == "2"


@pytest.mark.parametrize("ops, status", [
    (b'[{"op":"replace","path":"/id","value":"x"}]', 422),
    (b'[{"op":"test","path":"/active","value":false}]', 422),
    (b'[{"op":"add","path":"/birthDate","value":"not a date"}]', 422),
    (b'{"op":"add"}', 400),
    (b'[{', 400),
])
def test_bad_patches_change_nothing(client, ops, status):
    created = client.post("/Patient", json=patient(), headers=JSON).json()
    url = f"/Patient/{created['id']}"
    response = client.patch(url, content=ops, headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get(url).json() == created


def test_patch_needs_json_patch_media_type(client):
    created = client.post("/Patient", json=patient(), headers=JSON).json()
    response = client.patch(f"/Patient/{created['id']}", content=b"[]", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


@pytest.mark.parametrize("prefer, check", [
    ("return=minimal", lambda r: r.content == b""),
    ("return=representation", lambda r: r.json()["resourceType"] == "Patient"),
    ("return=OperationOutcome", lambda r: r.json()["resourceType"] == "OperationOutcome"),
])
def test_prefer_return(client, prefer, check):
    response = client.post("/Patient", json=patient(), headers={**JSON, "Prefer": prefer})
    assert response.status_code == 201
    assert response.headers["location"]
    assert check(response)


def test_values_are_stored_as_received(client):
    body = (b'{"resourceType":"Observation","status":"final","code":{"text":"BP"},'
            b'"valueQuantity":{"value":120.50,"unit":"mmHg"},'
            b'"extension":[{"url":"http://example.org/x","valueDecimal":1.000}]}')
    created = client.post("/Observation", content=body, headers=JSON)
    assert created.status_code == 201
    raw = client.get(f"/Observation/{created.json()['id']}").content
    assert b'"value":120.50' in raw
    assert b'"valueDecimal":1.000' in raw


def test_primitive_extensions_survive(client):
    resource = patient(birthDate="1970-03-30",
                       _birthDate={"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                                  "valueDateTime": "1970-03-30T14:35:45+08:00"}]})
    created = client.post("/Patient", json=resource, headers=JSON).json()
    assert created["_birthDate"] == resource["_birthDate"]
