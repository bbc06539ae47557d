"""The consortium access policy over HTTP: reads, writes, search, includes, _has, chains, history, Bundles.

Fixture (tests/fixtures/security/consortium.json): org-a refers Patient p1 to org-b (sr1, Task t1)
within consortium X, where org-c is also a member and p1 has an active Consent; org-d belongs to
consortium Y and has its own referral sr2 for p2. ``platform`` is a platform administrator.
"""

from __future__ import annotations

import pytest

from .conftest import audit_events

SR = "ServiceRequest"
#: the policy compiles to search conditions every backend must run the same way
pytestmark = pytest.mark.parametrize("auth_backend", ["sqlite", "mongomock"])


def _total(response) -> int:
    assert response.status_code == 200, response.text
    return response.json()["total"]


def _ids(response) -> set:
    assert response.status_code == 200, response.text
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in response.json().get("entry", [])}


@pytest.mark.parametrize("client_id, status", [
    ("hosp-a", 200),    # requester, through its PractitionerRole
    ("hosp-b", 200),    # performer
    ("hosp-c", 200),    # same consortium and the patient consented
    ("hosp-d", 404),    # another consortium: as if it did not exist
    ("platform", 200),  # administrator
])
def test_read_of_a_referral_follows_the_policy(auth_client, tokens, consortium, client_id, status):
    assert auth_client.get(f"/{SR}/sr1", headers=tokens.headers(client_id)).status_code == status


@pytest.mark.parametrize("path", ["Task/t1", "Patient/p1", "Condition/c1", "Consent/consent-p1"])
def test_supporting_records_of_a_foreign_referral_are_hidden(auth_client, tokens, consortium, path):
    assert auth_client.get(f"/{path}", headers=tokens.headers("hosp-d")).status_code == 404
    assert auth_client.get(f"/{path}", headers=tokens.headers("hosp-b")).status_code == 200


def test_directory_resources_are_open_to_members(auth_client, tokens, consortium):
    assert auth_client.get("/Organization/org-a", headers=tokens.headers("hosp-d")).status_code == 200


def test_consortium_sharing_needs_an_active_consent(auth_client, tokens, consortium):
    admin = tokens.headers("platform")
    consent = auth_client.get("/Consent/consent-p1", headers=admin).json()
    consent["status"] = "inactive"
    assert auth_client.put("/Consent/consent-p1", json=consent, headers=admin).status_code == 200
    assert auth_client.get(f"/{SR}/sr1", headers=tokens.headers("hosp-c")).status_code == 404
    assert auth_client.get(f"/{SR}/sr1", headers=tokens.headers("hosp-b")).status_code == 200


def test_shared_readers_may_not_change_a_referral(auth_client, tokens, consortium):
    sr1 = auth_client.get(f"/{SR}/sr1", headers=tokens.headers("hosp-c")).json()
    sr1["priority"] = "urgent"
    response = auth_client.put(f"/{SR}/sr1", json=sr1, headers=tokens.headers("hosp-c"))
    assert response.status_code == 403
    assert auth_client.put(f"/{SR}/sr1", json=sr1, headers=tokens.headers("hosp-d")).status_code == 404
    assert auth_client.delete(f"/{SR}/sr1", headers=tokens.headers("hosp-d")).status_code == 404
    assert auth_client.patch(f"/{SR}/sr1", json=[{"op": "replace", "path": "/priority", "value": "stat"}],
                             headers={**tokens.headers("hosp-d"),
                                      "Content-Type": "application/json-patch+json"}).status_code == 404


def test_a_member_creates_referrals_only_as_a_party(auth_client, tokens, consortium):
    mine = {"resourceType": SR, "status": "active", "intent": "order", "subject": {"reference": "Patient/p1"},
            "requester": {"reference": "PractitionerRole/role-a"}, "performer": [{"reference": "Organization/org-b"}]}
    created = auth_client.post(f"/{SR}", json=mine, headers=tokens.headers("hosp-a"))
    assert created.status_code == 201, created.text
    forged = {**mine, "requester": {"reference": "PractitionerRole/role-d"},
              "performer": [{"reference": "Organization/org-d"}]}
    refused = auth_client.post(f"/{SR}", json=forged, headers=tokens.headers("hosp-a"))
    assert refused.status_code == 403
    total = _total(auth_client.get(f"/{SR}?_total=accurate", headers=tokens.headers("platform")))
    assert total == 3  # sr1, sr2 and the one created; the refused one left nothing


def test_search_is_filtered_in_the_query(auth_client, tokens, consortium):
    d = tokens.headers("hosp-d")
    assert _ids(auth_client.get(f"/{SR}", headers=d)) == {f"{SR}/sr2"}
    assert _total(auth_client.get(f"/{SR}?_id=sr1", headers=d)) == 0
    assert _total(auth_client.get(f"/{SR}?_summary=count", headers=d)) == 1
    assert _total(auth_client.get(f"/{SR}?performer=Organization/org-b", headers=d)) == 0
    assert _total(auth_client.get("/Condition", headers=d)) == 1
    assert _total(auth_client.get(f"/{SR}", headers=tokens.headers("hosp-c"))) == 1
    assert _total(auth_client.get(f"/{SR}", headers=tokens.headers("platform"))) == 2


def test_compartment_search_is_filtered(auth_client, tokens, consortium):
    assert _total(auth_client.get(f"/Patient/p1/{SR}", headers=tokens.headers("hosp-d"))) == 0
    assert _total(auth_client.get(f"/Patient/p1/{SR}", headers=tokens.headers("hosp-a"))) == 1


def test_everything_follows_the_policy(auth_client, tokens, consortium):
    url = "/Patient/p1/$everything"
    assert auth_client.get(url, headers=tokens.headers("hosp-d")).status_code == 404
    # members search one restricted type at a time, so their $everything names it
    assert auth_client.get(url, headers=tokens.headers("hosp-a")).status_code == 403
    assert _ids(auth_client.get(f"{url}?_type={SR}", headers=tokens.headers("hosp-a"))) >= {f"{SR}/sr1"}
    assert not {f"{SR}/sr2", "Patient/p2"} & _ids(auth_client.get(f"{url}?_type={SR}", headers=tokens.headers("hosp-a")))
    admin = _ids(auth_client.get(url, headers=tokens.headers("platform")))
    assert {"Patient/p1", f"{SR}/sr1", "Condition/c1", "Consent/consent-p1"} <= admin  # Task: not in R4's compartment
    assert not {f"{SR}/sr2", "Condition/c2", "Patient/p2"} & admin


def test_bulk_export_is_for_administrators(auth_client, tokens, consortium):
    asynchronous = {"Prefer": "respond-async"}
    refused = auth_client.get("/$export?_type=ServiceRequest", headers={**tokens.headers("hosp-a"), **asynchronous})
    assert refused.status_code == 403
    accepted = auth_client.get("/$export?_type=ServiceRequest", headers={**tokens.headers("platform"), **asynchronous})
    assert accepted.status_code == 202
    status = accepted.headers["Content-Location"].removeprefix("http://testserver")
    assert auth_client.get(status, headers=tokens.headers("hosp-a")).status_code == 403
    assert auth_client.get(status).status_code == 401


def test_overdue_worklist_shows_only_visible_tasks(auth_client, tokens, consortium):
    admin = tokens.headers("platform")
    for task_id in ("t1", "t2"):
        task = auth_client.get(f"/Task/{task_id}", headers=admin).json()
        task["authoredOn"] = "2020-01-01T00:00:00Z"
        assert auth_client.put(f"/Task/{task_id}", json=task, headers=admin).status_code == 200

    def overdue(client_id):
        response = auth_client.get("/Task/$overdue?now=2099-01-01T00:00:00Z", headers=tokens.headers(client_id))
        assert response.status_code == 200, response.text
        return {e["resource"]["id"] for e in response.json().get("entry", [])}

    assert overdue("platform") == {"t1", "t2"}
    assert overdue("hosp-b") == {"t1"}
    assert overdue("hosp-d") == {"t2"}


def test_members_get_statistics_of_their_own_organisation(auth_client, tokens, consortium):
    other = auth_client.get("/$referral-statistics?organization=Organization/org-a", headers=tokens.headers("hosp-d"))
    assert other.status_code == 403
    own = auth_client.get("/$referral-statistics", headers=tokens.headers("hosp-d"))
    assert own.status_code == 200
    report = next(p["resource"] for p in own.json()["parameter"] if "resource" in p)
    assert report["reporter"] == {"reference": "Organization/org-d"}
    everything = auth_client.get("/$referral-statistics", headers=tokens.headers("platform")).json()
    assert "reporter" not in next(p["resource"] for p in everything["parameter"] if "resource" in p)


def test_insurance_estimate_takes_only_a_coverage_the_caller_may_read(auth_client, tokens, consortium):
    admin = tokens.headers("platform")
    for cid, patient in (("cov1", "p1"), ("cov2", "p2")):
        coverage = {"resourceType": "Coverage", "id": cid, "status": "active",
                    "beneficiary": {"reference": f"Patient/{patient}"}, "payor": [{"reference": "Organization/org-a"}]}
        assert auth_client.put(f"/Coverage/{cid}", json=coverage, headers=admin).status_code == 201
    url = f"/{SR}/sr1/$insurance-estimate?coverage=Coverage/"
    assert auth_client.get(url + "cov2", headers=tokens.headers("hosp-a")).status_code == 404
    assert auth_client.get(url + "cov1", headers=tokens.headers("hosp-a")).status_code != 404


def _own_task_pointing_at_sr1(auth_client, tokens) -> str:
    """org-d makes its own Task naming sr1 (it may reference what it cannot see)."""
    task = {"resourceType": "Task", "status": "requested", "intent": "order",
            "focus": {"reference": f"{SR}/sr1"}, "for": {"reference": "Patient/p2"},
            "requester": {"reference": "Organization/org-d"}, "owner": {"reference": "Organization/org-d"}}
    response = auth_client.post("/Task", json=task, headers=tokens.headers("hosp-d"))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_include_does_not_leak(auth_client, tokens, consortium):
    task_id = _own_task_pointing_at_sr1(auth_client, tokens)
    d = tokens.headers("hosp-d")
    found = _ids(auth_client.get(f"/Task?_id={task_id}&_include=Task:focus&_include=Task:patient", headers=d))
    assert found == {f"Task/{task_id}", "Patient/p2"}
    revinclude = _ids(auth_client.get("/Patient?_id=p2&_revinclude=Task:patient&_revinclude=ServiceRequest:subject",
                                      headers=d))
    assert f"{SR}/sr2" in revinclude and "Task/t1" not in revinclude
    admin = _ids(auth_client.get(f"/Task?_id={task_id}&_include=Task:focus", headers=tokens.headers("platform")))
    assert f"{SR}/sr1" in admin


def test_has_does_not_leak(auth_client, tokens, consortium):
    query = f"/Organization?_has:{SR}:performer:subject=Patient/p1"
    assert _total(auth_client.get(query, headers=tokens.headers("hosp-d"))) == 0
    assert _ids(auth_client.get(query, headers=tokens.headers("hosp-b"))) == {"Organization/org-b"}


def test_chain_does_not_leak(auth_client, tokens, consortium):
    task_id = _own_task_pointing_at_sr1(auth_client, tokens)
    query = "/Task?focus:ServiceRequest.performer=Organization/org-b"
    assert _total(auth_client.get(query, headers=tokens.headers("hosp-d"))) == 0
    admin = _ids(auth_client.get(query, headers=tokens.headers("platform")))
    assert f"Task/{task_id}" in admin and "Task/t1" in admin


def test_history_does_not_leak(auth_client, tokens, consortium):
    d = tokens.headers("hosp-d")
    assert auth_client.get(f"/{SR}/sr1/_history", headers=d).status_code == 404
    assert auth_client.get(f"/{SR}/sr1/_history/1", headers=d).status_code == 404
    assert auth_client.get(f"/{SR}/_history", headers=d).status_code == 403
    assert auth_client.get("/_history", headers=d).status_code == 403
    assert auth_client.get(f"/{SR}/sr1/_history", headers=tokens.headers("hosp-b")).status_code == 200
    assert auth_client.get(f"/{SR}/_history", headers=tokens.headers("platform")).status_code == 200


def test_transaction_and_batch_do_not_leak(auth_client, tokens, consortium):
    d = tokens.headers("hosp-d")
    read = {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"request": {"method": "GET", "url": f"{SR}/sr1"}}]}
    assert auth_client.post("/", json=read, headers=d).status_code == 404
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"{SR}/sr1"}},
        {"request": {"method": "GET", "url": f"{SR}?_id=sr1"}},
        {"request": {"method": "GET", "url": f"{SR}/sr2"}},
        {"request": {"method": "DELETE", "url": f"{SR}/sr1"}},
    ]}
    response = auth_client.post("/", json=batch, headers=d)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"].startswith("404")
    assert entries[1]["resource"]["total"] == 0
    assert entries[2]["response"]["status"].startswith("200")
    assert entries[3]["response"]["status"].startswith("404")
    sr1 = auth_client.get(f"/{SR}/sr1", headers=tokens.headers("hosp-a")).json()
    write = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {**sr1, "status": "revoked"}, "request": {"method": "PUT", "url": f"{SR}/sr1"}}]}
    assert auth_client.post("/", json=write, headers=d).status_code == 404
    assert auth_client.get(f"/{SR}/sr1", headers=tokens.headers("hosp-a")).json()["status"] == "draft"


def test_multi_type_search_by_members_is_refused(auth_client, tokens, consortium):
    assert auth_client.get(f"/?_type={SR},Task", headers=tokens.headers("hosp-d")).status_code == 403
    assert auth_client.get(f"/?_type={SR},Task", headers=tokens.headers("platform")).status_code == 200


def test_system_search_naming_no_type_does_not_leak(auth_client, tokens, consortium):
    # without _type a system search covers every type: a member may not run it unfiltered
    assert auth_client.get("/?_id=sr1", headers=tokens.headers("hosp-d")).status_code == 403
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": "?_id=sr1"}}]}
    answer = auth_client.post("/", json=batch, headers=tokens.headers("hosp-d"))
    assert answer.json()["entry"][0]["response"]["status"] in ("400", "403")  # refused, whichever check first
    narrow = auth_client.get("/?_id=t1", headers=tokens.headers("reader-a"))  # scopes cover two types only
    assert narrow.status_code == 403
    assert _ids(auth_client.get("/?_id=sr1", headers=tokens.headers("platform"))) == {f"{SR}/sr1"}


def test_audit_events_are_for_administrators_only(auth_client, auth_app, tokens, consortium):
    assert auth_client.get("/AuditEvent", headers=tokens.headers("hosp-a")).status_code == 403
    auth_app.state.audit.catch_up()
    response = auth_client.get("/AuditEvent?altid=hosp-a", headers=tokens.headers("platform"))
    assert _total(response) >= 1
    created = auth_client.post("/AuditEvent", json={"resourceType": "AuditEvent"}, headers=tokens.headers("hosp-a"))
    assert created.status_code == 403


def test_every_refused_or_filtered_attempt_leaves_an_audit_event(auth_client, auth_app, tokens, consortium):
    d = tokens.headers("hosp-d")
    attempts = [
        ("GET", f"/{SR}/sr1", None), ("GET", f"/{SR}?_id=sr1", None),
        ("GET", f"/{SR}/sr1/_history", None), ("GET", f"/{SR}/_history", None),
        ("GET", f"/Organization?_has:{SR}:performer:subject=Patient/p1", None),
        ("POST", "/", {"resourceType": "Bundle", "type": "transaction",
                       "entry": [{"request": {"method": "GET", "url": f"{SR}/sr1"}}]}),
    ]
    for method, path, body in attempts:
        auth_client.request(method, path, json=body, headers=d)
    events = [e for e in audit_events(auth_app) if e["agent"][0].get("altId") == "hosp-d"]
    described = [e["outcomeDesc"] for e in events]
    for method, path, _ in attempts:
        assert any(f"{method} {path.split('?')[0]}" in text for text in described), (path, described)
    refused = [e for e in events if e["outcome"] == "4"]
    assert len(refused) >= 4
    assert all(e["agent"][0]["who"]["reference"] == "Organization/org-d" for e in events)
    search = next(e for e in events if e["subtype"][0]["code"] == "search-type")
    assert search["entity"][-1]["query"]  # the query string, base64 as AuditEvent.entity.query requires


def test_bulk_creation_is_the_servers_own(auth_app, consortium):
    """``create_many`` (AuditEvents) skips every policy check, so a caller's session refuses it."""
    from fhir_server.errors import FhirError
    from fhir_server.security.audit import audit_record
    from fhir_server.security.context import Caller, acting_as

    store = auth_app.state.store
    prepared = store.prepare_new([audit_record({"interaction": "read", "status": 200}, "bulk-1")])
    member = Caller(client_id="hosp-a", organization="Organization/org-a", scopes=("system/*.cruds",))
    with acting_as(member, auth_app.state.guard):
        with pytest.raises(FhirError) as refused, store.session(write=True) as session:
            session.create_many(prepared)
    assert refused.value.status == 403
    with store.session(write=True) as session:
        assert session.create_many(prepared) == 1
    with store.session() as session:
        assert session.read("AuditEvent", "bulk-1") is not None
