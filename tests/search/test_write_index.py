"""Index rows are written in the write's transaction: creates, updates, deletes and transaction Bundles."""

from __future__ import annotations

ORG = "urn:uuid:7f1c2d3e-0000-4000-8000-000000000001"


def _ids(client, url: str) -> list[str]:
    response = client.get(url, headers={"Prefer": "handling=strict"})
    assert response.status_code == 200, response.text
    return sorted(e["resource"]["id"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match")


def _transaction(*entries) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_transaction_entries_are_searchable_together(client):
    bundle = _transaction(
        {"fullUrl": ORG, "resource": {"resourceType": "Organization", "name": "Tianshui Hospital"},
         "request": {"method": "POST", "url": "Organization"}},
        {"resource": {"resourceType": "Patient", "name": [{"family": "Ma"}], "managingOrganization": {"reference": ORG}},
         "request": {"method": "POST", "url": "Patient"}},
    )
    response = client.post("/", json=bundle)
    assert response.status_code == 200, response.text
    patients = _ids(client, "/Patient?organization.name=tianshui")
    assert len(patients) == 1
    assert _ids(client, f"/Patient?_id={patients[0]}&organization:missing=false") == patients


def test_failed_transaction_leaves_no_index_rows(client):
    bundle = _transaction(
        {"resource": {"resourceType": "Patient", "name": [{"family": "Rollback"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "id": "other", "name": [{"family": "Mismatch"}]},
         "request": {"method": "PUT", "url": "Patient/not-the-same-id"}},
    )
    assert client.post("/", json=bundle).status_code >= 400
    assert _ids(client, "/Patient?name=rollback") == []


def test_update_and_delete_replace_index_rows(client):
    client.put("/Patient/w1", json={"resourceType": "Patient", "id": "w1", "gender": "male", "birthDate": "1970"})
    assert _ids(client, "/Patient?gender=male&birthdate=1970") == ["w1"]
    client.put("/Patient/w1", json={"resourceType": "Patient", "id": "w1", "gender": "female"})
    assert _ids(client, "/Patient?gender=male") == []
    assert _ids(client, "/Patient?birthdate:missing=true&gender=female") == ["w1"]
    client.delete("/Patient/w1")
    assert _ids(client, "/Patient?gender=female") == []
    client.put("/Patient/w1", json={"resourceType": "Patient", "id": "w1", "gender": "other"})
    assert _ids(client, "/Patient?gender=other") == ["w1"]
