"""Instance, type and system history with _since and _count paging."""

from __future__ import annotations

JSON = {"Content-Type": "application/fhir+json"}


def test_instance_history_newest_first(client):
    client.put("/Patient/h1", json={"resourceType": "Patient", "id": "h1"}, headers=JSON)
    client.put("/Patient/h1", json={"resourceType": "Patient", "id": "h1", "active": True}, headers=JSON)
    client.delete("/Patient/h1")
    bundle = client.get("/Patient/h1/_history").json()
    assert bundle["type"] == "history" and bundle["total"] == 3
    methods = [e["request"]["method"] for e in bundle["entry"]]
    assert methods == ["DELETE", "PUT", "PUT"]
    assert "resource" not in bundle["entry"][0]
    assert bundle["entry"][1]["resource"]["active"] is True


def test_type_and_system_history(client):
    before = client.get("/_history").json()["total"]  # the server's own conformance resources
    client.post("/Patient", json={"resourceType": "Patient"}, headers=JSON)
    client.post("/Organization", json={"resourceType": "Organization", "name": "县医院"}, headers=JSON)
    assert client.get("/Patient/_history").json()["total"] == 1
    assert client.get("/Organization/_history").json()["total"] == 1
    assert client.get("/_history").json()["total"] == before + 2


def test_history_of_unknown_resource_is_404(client):
    assert client.get("/Patient/nobody/_history").status_code == 404


def test_since_and_count_paging_is_stable(client):
    for i in range(5):
        client.put(f"/Patient/s{i}", json={"resourceType": "Patient", "id": f"s{i}"}, headers=JSON)
    middle = client.get("/Patient/s2").json()["meta"]["lastUpdated"]
    since = client.get("/Patient/_history", params={"_since": middle}).json()
    assert since["total"] == 3
    page1 = client.get("/Patient/_history?_count=2").json()
    assert len(page1["entry"]) == 2 and page1["total"] == 5
    next_url = next(link["url"] for link in page1["link"] if link["relation"] == "next")
    # a write after the first page must not shift the next page
    client.put("/Patient/late", json={"resourceType": "Patient", "id": "late"}, headers=JSON)
    page2 = client.get(next_url.replace("http://testserver", "")).json()
    ids1 = [e["resource"]["id"] for e in page1["entry"]]
    ids2 = [e["resource"]["id"] for e in page2["entry"]]
    assert ids1 == ["s4", "s3"] and ids2 == ["s2", "s1"]


def test_bad_since_is_400(client):
    assert client.get("/_history?_since=yesterday").status_code == 400
    assert client.get("/_history?_count=-1").status_code == 400


def test_history_refuses_at_rather_than_ignoring_it(client):
    client.put("/Patient/h1", json={"resourceType": "Patient", "id": "h1"}, headers={"Content-Type": "application/fhir+json"})
    response = client.get("/Patient/h1/_history?_at=2020")
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["_at"]
