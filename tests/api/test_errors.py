"""Every failure a client can cause answers with an OperationOutcome and the right status; nothing is stored."""

from __future__ import annotations

import pytest

JSON = {"Content-Type": "application/fhir+json"}


def _outcome(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] in ("error", "fatal")
    return body


def _count(client, resource_type="Patient"):
    return client.get(f"/{resource_type}/_history").json()["total"]


@pytest.mark.parametrize("body", [b"{", b"[]", b"\"text\"", b"", b"{\"resourceType\":"])
def test_malformed_json_is_400(client, body):
    _outcome(client.post("/Patient", content=body, headers=JSON), 400)
    assert _count(client) == 0


def test_malformed_xml_is_400(client):
    _outcome(client.post("/Patient", content=b"<Patient xmlns='http://hl7.org/fhir'><", headers={
        "Content-Type": "application/fhir+xml"}), 400)
    assert _count(client) == 0


def test_wrong_resource_type_for_url_is_400(client):
    body = _outcome(client.post("/Observation", json={"resourceType": "Patient"}, headers=JSON), 400)
    assert body["issue"][0]["expression"] == ["resourceType"]
    assert _count(client, "Observation") == 0


def test_structurally_invalid_is_422_with_path(client):
    body = _outcome(client.post("/Patient", json={"resourceType": "Patient", "name": [{"given": [5]}],
                                                   "birthDate": "yesterday"}, headers=JSON), 422)
    expressions = {e for i in body["issue"] for e in i.get("expression", [])}
    assert "Patient.name[0].given[0]" in expressions
    assert "Patient.birthDate" in expressions
    assert _count(client) == 0


def test_unknown_element_is_422(client):
    body = _outcome(client.post("/Patient", json={"resourceType": "Patient", "nmae": []}, headers=JSON), 422)
    assert body["issue"][0]["expression"] == ["Patient.nmae"]


def test_unsupported_media_type_is_415(client):
    _outcome(client.post("/Patient", content=b"name=x", headers={"Content-Type": "text/plain"}), 415)


def test_method_not_allowed_is_405(client):
    _outcome(client.delete("/metadata"), 405)
    _outcome(client.post("/Patient/p1"), 405)
    _outcome(client.put("/Patient/_history"), 405)


def test_body_over_limit_is_413(client, app):
    limit = app.state.settings.max_body_bytes
    big = b'{"resourceType":"Patient","text":{"status":"generated","div":"' + b"x" * (limit + 10) + b'"}}'
    _outcome(client.post("/Patient", content=big, headers=JSON), 413)
    assert _count(client) == 0


def test_conflicting_create_of_same_id_via_put_is_serialised(client):
    assert client.put("/Patient/a", json={"resourceType": "Patient", "id": "a"}, headers=JSON).status_code == 201
    assert client.put("/Patient/a", json={"resourceType": "Patient", "id": "a"}, headers=JSON).status_code == 200


def test_invalid_id_is_400(client):
    _outcome(client.put("/Patient/bad_id!", json={"resourceType": "Patient", "id": "bad_id!"}, headers=JSON), 400)


def test_unknown_operation_is_404(client):
    _outcome(client.get("/Patient/$no-such-operation"), 404)


def test_errors_never_leak_stack_traces(client):
    response = client.post("/", content=b'{"resourceType":"Bundle","type":"transaction","entry":[{"request":{}}]}',
                           headers=JSON)
    assert response.status_code == 400
    assert "Traceback" not in response.text


def test_unsupported_format_answers_406(client):
    _outcome(client.get("/metadata?_format=text/csv"), 406)
