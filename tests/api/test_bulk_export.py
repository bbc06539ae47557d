"""Bulk Data $export: kick-off, polling, NDJSON files, cancellation, refusals."""

from __future__ import annotations

import json
import time

from fhir_server.api import bulk_export

JSON = {"Content-Type": "application/fhir+json"}
ASYNC = {"Prefer": "respond-async"}
BASE = "http://testserver"


def _seed(client, patients=5):
    for i in range(patients):
        client.put(f"/Patient/p{i}", json={"resourceType": "Patient", "id": f"p{i}", "name": [{"family": "王"}]},
                   headers=JSON)
        client.post("/Observation", json={"resourceType": "Observation", "status": "final", "code": {"text": "血压"},
                                          "subject": {"reference": f"Patient/p{i}"}}, headers=JSON)
    client.put("/Organization/o1", json={"resourceType": "Organization", "id": "o1", "name": "乡镇卫生院"},
               headers=JSON)


def _finish(client, status_url: str) -> dict:
    path = status_url[len(BASE):]
    for _ in range(200):
        response = client.get(path)
        if response.status_code != 202:
            assert response.status_code == 200, response.text
            return response.json()
        assert "exported" in response.headers["X-Progress"]
        time.sleep(0.02)
    raise AssertionError("the export did not finish")


def _lines(client, manifest: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for output in manifest["output"]:
        response = client.get(output["url"][len(BASE):])
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        resources = [json.loads(line) for line in response.text.splitlines()]
        assert len(resources) == output["count"]
        found.setdefault(output["type"], []).extend(resources)
    return found


def test_system_export_writes_every_resource_of_the_asked_types(client):
    _seed(client)
    kick_off = client.get("/$export?_type=Patient,Observation", headers=ASYNC)
    assert kick_off.status_code == 202
    manifest = _finish(client, kick_off.headers["Content-Location"])
    assert manifest["request"] == f"{BASE}/$export?_type=Patient,Observation"
    assert manifest["requiresAccessToken"] is False and manifest["error"] == []
    found = _lines(client, manifest)
    assert sorted(r["id"] for r in found["Patient"]) == [f"p{i}" for i in range(5)]
    assert len(found["Observation"]) == 5 and "Organization" not in found
    assert found["Patient"][0] == client.get(f"/Patient/{found['Patient'][0]['id']}").json()  # as stored


def test_files_are_split_and_since_filters(client, monkeypatch):
    monkeypatch.setattr(bulk_export, "FILE_LINES", 2)
    _seed(client)
    manifest = _finish(client, client.get("/$export?_type=Patient", headers=ASYNC).headers["Content-Location"])
    assert [o["count"] for o in manifest["output"]] == [2, 2, 1]
    assert len({o["url"] for o in manifest["output"]}) == 3
    later = client.get("/$export?_type=Patient&_since=2999-01-01T00:00:00Z", headers=ASYNC)
    assert _finish(client, later.headers["Content-Location"])["output"] == []


def test_patient_level_export_covers_the_compartment_types(client):
    _seed(client)
    manifest = _finish(client, client.get("/Patient/$export", headers=ASYNC).headers["Content-Location"])
    types = {o["type"] for o in manifest["output"]}
    assert {"Patient", "Observation"} <= types and "Organization" not in types
    assert client.get("/Patient/$export?_type=Organization", headers=ASYNC).status_code == 400


def test_a_cancelled_job_is_gone(client):
    _seed(client)
    status_url = client.get("/$export?_type=Patient", headers=ASYNC).headers["Content-Location"]
    manifest = _finish(client, status_url)
    file_url = manifest["output"][0]["url"][len(BASE):]
    traversal = file_url.split("&file=")[0] + "&file=../../fhir.db"
    assert client.get(traversal).status_code == 404  # only the job's own files are served
    assert client.delete(status_url[len(BASE):]).status_code == 202
    assert client.get(status_url[len(BASE):]).status_code == 404
    assert client.get(file_url).status_code == 404


def test_kick_off_refusals(client):
    assert client.get("/$export").status_code == 400  # no Prefer: respond-async
    for query in ("_outputFormat=text/csv", "_type=Nothing", "_since=yesterday", "_elements=id",
                  "_type=Patient&_typeFilter=Observation%3Fstatus%3Dfinal", "_typeFilter=Patient%3Fnope%3D1",
                  "_typeFilter=Patient%3F_count%3D1", "_typeFilter=active%3Dtrue"):
        assert client.get(f"/$export?{query}", headers=ASYNC).status_code == 400, query
    assert client.get("/$export-poll-status?_jobId=nope").status_code == 404
    assert client.get("/$export-file?_jobId=nope&file=Patient-1.ndjson").status_code == 404


def test_finished_jobs_are_forgotten_after_the_retention_time(client, monkeypatch, tmp_path):
    _seed(client, patients=1)
    first = client.get("/$export?_type=Patient", headers=ASYNC).headers["Content-Location"]
    _finish(client, first)
    job_id = first.rsplit("=", 1)[1]
    assert (tmp_path / "bulk-export" / job_id).is_dir()
    monkeypatch.setattr(bulk_export, "RETENTION_SECONDS", 0)
    second = client.get("/$export?_type=Patient", headers=ASYNC).headers["Content-Location"]
    assert client.get(first[len(BASE):]).status_code == 404
    assert not (tmp_path / "bulk-export" / job_id).exists()
    _finish(client, second)


def test_type_filters_select_what_is_exported(client):
    _seed(client)
    client.put("/Patient/p0", json={"resourceType": "Patient", "id": "p0", "gender": "female"}, headers=JSON)
    client.put("/Patient/p1", json={"resourceType": "Patient", "id": "p1", "gender": "male"}, headers=JSON)
    filters = "Patient%3Fgender%3Dfemale,Patient%3F_id%3Dp0,p1"  # two filters OR-ed, p0 matching both once
    kick_off = client.get(f"/$export?_type=Patient,Observation&_typeFilter={filters}", headers=ASYNC)
    assert kick_off.status_code == 202, kick_off.text
    found = _lines(client, _finish(client, kick_off.headers["Content-Location"]))
    assert sorted(r["id"] for r in found["Patient"]) == ["p0", "p1"]
    assert len(found["Observation"]) == 5  # a type without a filter is exported whole


def test_the_capability_statement_lists_export_but_not_its_helpers(client):
    rest = client.get("/metadata").json()["rest"][0]
    system = {op["name"] for op in rest["operation"]}
    assert "export" in system and not {"export-poll-status", "export-file"} & system
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert "export" in {op["name"] for op in patient["operation"]}


def test_group_export_covers_the_members_compartments(client, monkeypatch):
    monkeypatch.setattr(bulk_export, "_GROUP_CHUNK", 1)  # several membership searches, merged without repeats
    _seed(client)
    client.put("/Practitioner/dr1", json={"resourceType": "Practitioner", "id": "dr1"}, headers=JSON)
    client.post("/Observation", json={"resourceType": "Observation", "status": "preliminary", "code": {"text": "x"},
                                      "subject": {"reference": "Patient/p0"}, "performer": [{"reference": "Patient/p1"}]},
                headers=JSON)
    members = [{"entity": {"reference": "Patient/p0"}}, {"entity": {"reference": f"{BASE}/Patient/p1"}},
               {"entity": {"reference": "Patient/p2"}, "inactive": True}, {"entity": {"reference": "Practitioner/dr1"}}]
    client.put("/Group/g1", json={"resourceType": "Group", "id": "g1", "type": "person", "actual": True,
                                  "member": members}, headers=JSON)
    client.put("/Group/empty", json={"resourceType": "Group", "id": "empty", "type": "person", "actual": True},
               headers=JSON)
    kick_off = client.get("/Group/g1/$export?_type=Patient,Observation", headers=ASYNC)
    assert kick_off.status_code == 202, kick_off.text
    manifest = _finish(client, kick_off.headers["Content-Location"])
    assert manifest["request"] == f"{BASE}/Group/g1/$export?_type=Patient,Observation"
    found = _lines(client, manifest)
    assert sorted(r["id"] for r in found["Patient"]) == ["p0", "p1"]
    subjects = sorted(r["subject"]["reference"] for r in found["Observation"])
    assert subjects == ["Patient/p0", "Patient/p0", "Patient/p1"]  # the shared one once
    final = client.get("/Group/g1/$export?_type=Observation&_typeFilter=Observation%3Fstatus%3Dfinal", headers=ASYNC)
    assert len(_lines(client, _finish(client, final.headers["Content-Location"]))["Observation"]) == 2
    nobody = client.get("/Group/empty/$export", headers=ASYNC)
    assert _finish(client, nobody.headers["Content-Location"])["output"] == []
    assert client.get("/Group/none/$export", headers=ASYNC).status_code == 404
