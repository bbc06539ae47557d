"""Batch and transaction Bundles: all-or-nothing, urn:uuid resolution, processing order."""

from __future__ import annotations

JSON = {"Content-Type": "application/fhir+json"}


def _tx(*entries, kind="transaction"):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _post(resource, full_url=None, **request):
    entry = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"], **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _total(client):
    return client.get("/_history").json()["total"]


def test_transaction_resolves_urn_uuid_references(client):
    patient_url = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    bundle = _tx(
        _post({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
               "subject": {"reference": patient_url}}),
        _post({"resourceType": "Patient", "name": [{"family": "王"}]}, patient_url),
    )
    response = client.post("/", json=bundle, headers=JSON)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    locations = [e["response"]["location"] for e in result["entry"]]
    assert all(e["response"]["status"].startswith("201") for e in result["entry"])
    patient_id = locations[1].split("/")[1]
    request = client.get("/" + "/".join(locations[0].split("/")[:2])).json()
    assert request["subject"]["reference"] == f"Patient/{patient_id}"


def test_transaction_failing_midway_stores_nothing(client):
    client.put("/Patient/keep", json={"resourceType": "Patient", "id": "keep"}, headers=JSON)
    before = _total(client)
    bundle = _tx(
        _post({"resourceType": "Patient", "name": [{"family": "一"}]}),
        {"resource": {"resourceType": "Patient", "id": "keep", "active": True},
         "request": {"method": "PUT", "url": "Patient/keep"}},
        {"request": {"method": "DELETE", "url": "Patient/keep"}},
        _post({"resourceType": "Patient", "birthDate": "not-a-date"}),
    )
    response = client.post("/", json=bundle, headers=JSON)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[3]" in outcome["issue"][0]["diagnostics"]
    assert _total(client) == before
    assert client.get("/Patient/keep").status_code == 200
    assert client.get("/Patient/keep").json().get("active") is None


def test_transaction_with_if_match_conflict_rolls_back(client):
    client.put("/Patient/v", json={"resourceType": "Patient", "id": "v"}, headers=JSON)
    bundle = _tx(
        _post({"resourceType": "Organization", "name": "乡镇卫生院"}),
        {"resource": {"resourceType": "Patient", "id": "v", "active": False},
         "request": {"method": "PUT", "url": "Patient/v", "ifMatch": 'W/"5"'}},
    )
    assert client.post("/", json=bundle, headers=JSON).status_code == 412
    assert client.get("/Organization/_history").json()["total"] == 0


def test_transaction_processing_order_delete_before_create(client):
    client.put("/Patient/old", json={"resourceType": "Patient", "id": "old"}, headers=JSON)
    bundle = _tx(
        {"resource": {"resourceType": "Patient", "id": "new"}, "request": {"method": "PUT", "url": "Patient/new"}},
        {"request": {"method": "GET", "url": "Patient/old"}},
        {"request": {"method": "DELETE", "url": "Patient/old"}},
    )
    response = client.post("/", json=bundle, headers=JSON)
    assert response.status_code == 410  # GET runs after DELETE, so it reads a deleted resource
    assert client.get("/Patient/old").status_code == 200  # and the whole transaction rolled back


def test_transaction_conditional_create_answers_with_the_matched_version(client):
    ident = {"system": "urn:oid:2.16.156.10011.1.17", "value": "M-1"}
    client.put("/Patient/m1", json={"resourceType": "Patient", "id": "m1", "identifier": [ident]}, headers=JSON)
    client.put("/Patient/m1", json={"resourceType": "Patient", "id": "m1", "identifier": [ident], "active": True},
               headers=JSON)
    patient_url = "urn:uuid:0d4e5a5e-59a4-4b0e-9a8e-1f9e1c3c1e01"
    bundle = _tx(
        _post({"resourceType": "Patient", "identifier": [ident]}, patient_url,
              ifNoneExist=f"identifier={ident['system']}|{ident['value']}"),
        _post({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
               "subject": {"reference": patient_url}}),
    )
    response = client.post("/", json=bundle, headers=JSON)
    assert response.status_code == 200, response.text
    matched, created = (e["response"] for e in response.json()["entry"])
    assert matched["status"] == "200 OK"
    assert matched["location"] == "Patient/m1/_history/2"
    assert matched["etag"] == 'W/"2"'
    assert client.get("/Patient?identifier=M-1").json()["total"] == 1
    request = client.get("/" + "/".join(created["location"].split("/")[:2])).json()
    assert request["subject"]["reference"] == "Patient/m1"


def test_transaction_deleting_what_its_conditional_create_matched_is_400(client):
    ident = {"system": "urn:oid:2.16.156.10011.1.17", "value": "M-2"}
    client.put("/Patient/m2", json={"resourceType": "Patient", "id": "m2", "identifier": [ident]}, headers=JSON)
    bundle = _tx(
        _post({"resourceType": "Patient", "identifier": [ident]},
              ifNoneExist=f"identifier={ident['system']}|{ident['value']}"),
        {"request": {"method": "DELETE", "url": "Patient/m2"}},
    )
    response = client.post("/", json=bundle, headers=JSON)
    assert response.status_code == 400
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "Patient/m2" in diagnostics and "Bundle.entry[1]" in diagnostics
    assert client.get("/Patient/m2").status_code == 200


def test_batch_entries_are_independent(client):
    bundle = _tx(
        _post({"resourceType": "Patient", "name": [{"family": "好"}]}),
        _post({"resourceType": "Patient", "birthDate": "bad"}),
        {"request": {"method": "GET", "url": "Patient/missing"}},
        {"request": {"method": "PATCH", "url": "Patient"}},
        kind="batch",
    )
    response = client.post("/", json=bundle, headers=JSON)
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert response.json()["type"] == "batch-response"
    assert entries[0]["response"]["status"].startswith("201")
    assert entries[1]["response"]["status"] == "422"
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert entries[2]["response"]["status"] == "404"
    assert entries[3]["response"]["status"] == "400"
    assert client.get("/Patient/_history").json()["total"] == 1


def test_bundle_of_wrong_type_is_400(client):
    assert client.post("/", json={"resourceType": "Bundle", "type": "collection"}, headers=JSON).status_code == 400
    assert client.post("/", json={"resourceType": "Patient"}, headers=JSON).status_code == 400


def test_unresolved_urn_uuid_is_400(client):
    bundle = _tx(_post({"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"},
                        "subject": {"reference": "urn:uuid:0b7b1b1e-0000-0000-0000-000000000000"}}))
    before = _total(client)  # the server's own conformance resources are there from start-up
    assert client.post("/", json=bundle, headers=JSON).status_code == 400
    assert _total(client) == before


def test_transaction_patch_via_binary(client):
    import base64

    client.put("/Patient/pp", json={"resourceType": "Patient", "id": "pp"}, headers=JSON)
    patch = base64.b64encode(b'[{"op":"add","path":"/active","value":true}]').decode()
    bundle = _tx({"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                               "data": patch},
                  "request": {"method": "PATCH", "url": "Patient/pp"}})
    assert client.post("/", json=bundle, headers=JSON).status_code == 200
    assert client.get("/Patient/pp").json()["active"] is True


def test_too_many_entries_is_413(client, app):
    limit = app.state.settings.max_bundle_entries
    bundle = _tx(*[_post({"resourceType": "Patient"}) for _ in range(limit + 1)])
    before = _total(client)
    assert client.post("/", json=bundle, headers=JSON).status_code == 413
    assert _total(client) == before
