"""Patient/$everything and the all-types compartment search (``Patient/1/*``)."""

from __future__ import annotations

JSON = {"Content-Type": "application/fhir+json"}


def _seed(client):
    client.put("/Organization/o1", json={"resourceType": "Organization", "id": "o1", "name": "县人民医院"},
               headers=JSON)
    client.put("/Practitioner/dr1", json={"resourceType": "Practitioner", "id": "dr1"}, headers=JSON)
    for pid in ("p1", "p2"):
        client.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid,
                                             "generalPractitioner": [{"reference": "Practitioner/dr1"}],
                                             "managingOrganization": {"reference": "Organization/o1"}}, headers=JSON)
    made = {}
    for pid in ("p1", "p2"):
        made[pid] = [
            client.post("/Observation", json={"resourceType": "Observation", "status": "final",
                                              "code": {"text": "血压"}, "subject": {"reference": f"Patient/{pid}"}},
                        headers=JSON).json()["id"],
            client.post("/ServiceRequest", json={"resourceType": "ServiceRequest", "status": "active",
                                                 "intent": "order", "subject": {"reference": f"Patient/{pid}"},
                                                 "performer": [{"reference": "Organization/o1"}]},
                        headers=JSON).json()["id"],
            client.post("/Condition", json={"resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
                                            "code": {"text": "高血压"}}, headers=JSON).json()["id"],
        ]
    return made


def _entries(bundle, mode=None):
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if mode is None or e["search"]["mode"] == mode]


def test_everything_returns_the_patient_its_compartment_and_what_they_reference(client):
    made = _seed(client)
    response = client.get("/Patient/p1/$everything")
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    matches = _entries(bundle, "match")
    assert matches[0] == "Patient/p1"
    assert sorted(matches[1:]) == sorted([f"Observation/{made['p1'][0]}", f"ServiceRequest/{made['p1'][1]}",
                                          f"Condition/{made['p1'][2]}"])
    assert bundle["total"] == 4
    assert sorted(_entries(bundle, "include")) == ["Organization/o1", "Practitioner/dr1"]  # referenced once each
    assert not any(e.endswith(tuple(made["p2"])) for e in _entries(bundle))
    assert client.get("/metadata").json()["rest"][0]["resource"]  # the operation is advertised
    patient = next(r for r in client.get("/metadata").json()["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"} \
        in patient["operation"]


def test_everything_pages_with_its_own_links(client):
    made = _seed(client)
    url, seen = "/Patient/p1/$everything?_count=1", []
    while url:
        bundle = client.get(url).json()
        seen += _entries(bundle, "match")
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        if url:
            assert url.startswith("http://testserver/Patient/p1/$everything?") and "_count=1" in url
            url = url[len("http://testserver"):]
    assert seen[0] == "Patient/p1"
    assert sorted(seen[1:]) == sorted([f"Observation/{made['p1'][0]}", f"ServiceRequest/{made['p1'][1]}",
                                       f"Condition/{made['p1'][2]}"])


def test_everything_type_and_since(client):
    made = _seed(client)
    only = client.get("/Patient/p1/$everything?_type=Observation,Condition").json()
    assert sorted(_entries(only, "match")) == sorted([f"Observation/{made['p1'][0]}", f"Condition/{made['p1'][2]}"])
    with_patient = client.get("/Patient/p1/$everything?_type=Patient").json()
    assert _entries(with_patient, "match") == ["Patient/p1"]
    posted = client.post("/Patient/p1/$everything", headers=JSON, json={
        "resourceType": "Parameters", "parameter": [{"name": "_type", "valueCode": "ServiceRequest"}]})
    assert _entries(posted.json(), "match") == [f"ServiceRequest/{made['p1'][1]}"]
    assert client.get("/Patient/p1/$everything?_since=2999-01-01T00:00:00Z").json()["total"] == 0
    assert client.get("/Patient/p1/$everything?_since=2000-01-01T00:00:00%2B08:00").json()["total"] == 4


def test_everything_refuses_what_it_cannot_answer(client):
    _seed(client)
    for query, where in (("start=2024-01-01", "start"), ("_since=yesterday", "_since"), ("_type=Nothing", "_type")):
        response = client.get(f"/Patient/p1/$everything?{query}")
        assert response.status_code == 400, query
        assert response.json()["issue"][0]["expression"] == [where]
    assert client.get("/Patient/p1/$everything?foo=1").status_code == 400
    assert client.get("/Patient/nobody/$everything").status_code == 404
    client.delete("/Patient/p2")
    assert client.get("/Patient/p2/$everything").status_code == 410


def test_compartment_search_over_every_type(client):
    made = _seed(client)
    bundle = client.get("/Patient/p1/*").json()
    assert sorted(_entries(bundle)) == sorted([f"Observation/{made['p1'][0]}", f"ServiceRequest/{made['p1'][1]}",
                                               f"Condition/{made['p1'][2]}"])
    assert client.get("/Patient/p1/*?_count=2").json()["total"] == 3
    assert client.get("/Basic/p1/*").status_code == 404  # not a compartment


def test_encounter_everything(client):
    _seed(client)
    client.put("/Encounter/e1", json={"resourceType": "Encounter", "id": "e1", "status": "finished",
                                      "class": {"code": "IMP"}, "subject": {"reference": "Patient/p1"}}, headers=JSON)
    client.put("/Encounter/e2", json={"resourceType": "Encounter", "id": "e2", "status": "finished",
                                      "class": {"code": "IMP"}, "subject": {"reference": "Patient/p1"}}, headers=JSON)
    during = client.post("/Observation", json={"resourceType": "Observation", "status": "final", "code": {"text": "体温"},
                                               "subject": {"reference": "Patient/p1"},
                                               "encounter": {"reference": "Encounter/e1"}}, headers=JSON).json()["id"]
    client.post("/Observation", json={"resourceType": "Observation", "status": "final", "code": {"text": "体温"},
                                      "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e2"}},
                headers=JSON)
    bundle = client.get("/Encounter/e1/$everything").json()
    assert _entries(bundle, "match") == ["Encounter/e1", f"Observation/{during}"]
    assert bundle["total"] == 2
    assert _entries(bundle, "include") == ["Patient/p1"]
    assert _entries(client.get("/Encounter/e1/$everything?_type=Observation").json(), "match") == [f"Observation/{during}"]
    encounter = next(r for r in client.get("/metadata").json()["rest"][0]["resource"] if r["type"] == "Encounter")
    assert {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Encounter-everything"} \
        in encounter["operation"]
