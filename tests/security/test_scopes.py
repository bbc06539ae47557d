"""SMART scope parsing (v1 and v2) and per-interaction enforcement over HTTP."""

from __future__ import annotations

import pytest

from fhir_server.security.scopes import Permissions, ScopeError, grant, parse_scope

SR = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/p1"},
      "requester": {"reference": "PractitionerRole/role-a"}, "performer": [{"reference": "Organization/org-b"}]}


@pytest.mark.parametrize("text, letters", [
    ("system/Patient.read", "rs"), ("system/Patient.write", "cud"), ("system/*.*", "cruds"),
    ("system/Task.cu", "cu"), ("system/*.rs", "rs"), ("system/ServiceRequest.cruds", "cruds"),
    ("system/Observation.s", "s"), ("system/Task.d", "d"),
])
def test_scope_forms(text, letters):
    assert parse_scope(text).letters == frozenset(letters)


@pytest.mark.parametrize("text", ["system/Patient.rc", "system/Patient.rr", "system/Patient.x", "Patient.read",
                                  "system/patient.read", "openid", "system/Patient.rs?category=x", ""])
def test_malformed_scopes_are_rejected(text):
    with pytest.raises(ScopeError):
        parse_scope(text)


def test_permissions_combine_and_wildcard():
    permissions = Permissions.of(["system/Patient.r", "system/Patient.s", "system/*.c"])
    assert permissions.allows("r", "Patient") and permissions.allows("s", "Patient")
    assert permissions.allows("c", "Task") and not permissions.allows("r", "Task")


def test_grant_keeps_only_what_the_registration_covers():
    assert grant("system/Patient.rs system/Task.c", ["system/*.read"]) == ["system/Patient.rs"]
    assert grant("system/*.rs", ["system/*.read"]) == ["system/*.rs"]
    with pytest.raises(ScopeError):
        grant("system/*.rs", ["system/Patient.read"])  # a type grant does not cover every type
    with pytest.raises(ScopeError):
        grant("patient/Patient.read", ["system/*.*"])


@pytest.mark.parametrize("scope, method, path, body, status", [
    ("system/ServiceRequest.read", "GET", "/ServiceRequest/sr1", None, 200),
    ("system/ServiceRequest.read", "GET", "/ServiceRequest", None, 200),
    ("system/ServiceRequest.read", "POST", "/ServiceRequest", SR, 403),
    ("system/ServiceRequest.r", "GET", "/ServiceRequest/sr1", None, 200),
    ("system/ServiceRequest.r", "GET", "/ServiceRequest", None, 403),       # search needs s
    ("system/ServiceRequest.s", "GET", "/ServiceRequest/sr1", None, 403),   # read needs r
    ("system/ServiceRequest.s", "GET", "/ServiceRequest", None, 200),
    ("system/ServiceRequest.c", "POST", "/ServiceRequest", SR, 201),
    ("system/ServiceRequest.c", "GET", "/ServiceRequest/sr1", None, 403),
    ("system/ServiceRequest.write", "POST", "/ServiceRequest", SR, 201),
    ("system/ServiceRequest.write", "DELETE", "/ServiceRequest/sr1", None, 204),
    ("system/ServiceRequest.cu", "DELETE", "/ServiceRequest/sr1", None, 403),
    ("system/ServiceRequest.r", "GET", "/ServiceRequest/sr1/_history", None, 200),
    ("system/ServiceRequest.r", "GET", "/ServiceRequest/sr1/_history/1", None, 200),
    ("system/Patient.rs", "GET", "/ServiceRequest/sr1", None, 403),
    ("system/*.rs", "GET", "/Patient/p1", None, 200),
    ("system/*.*", "GET", "/Patient/p1", None, 200),
])
def test_each_interaction_needs_its_scope(auth_client, tokens, consortium, scope, method, path, body, status):
    response = auth_client.request(method, path, json=body, headers=tokens.headers("hosp-a", scope))
    assert response.status_code == status, response.text


def test_bundle_entries_are_checked_one_by_one(auth_client, tokens, consortium):
    headers = tokens.headers("hosp-a", "system/ServiceRequest.rs")
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "ServiceRequest/sr1"}},
        {"request": {"method": "GET", "url": "Patient/p1"}},
        {"request": {"method": "POST", "url": "ServiceRequest"}, "resource": SR},
        {"request": {"method": "GET", "url": "Patient?_id=p1"}},
    ]}
    entries = auth_client.post("/", json=batch, headers=headers).json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["200", "403", "403", "403"]
    transaction = {**batch, "type": "transaction", "entry": batch["entry"][2:3]}
    assert auth_client.post("/", json=transaction, headers=headers).status_code == 403


def test_included_resources_need_a_read_scope(auth_client, tokens, consortium):
    headers = tokens.headers("reader-a", "system/ServiceRequest.read system/Task.rs")
    found = auth_client.get("/Task?_id=t1&_include=Task:focus&_include=Task:patient", headers=headers).json()
    kinds = {e["resource"]["resourceType"] for e in found["entry"]}
    assert kinds == {"Task", "ServiceRequest"}  # Patient needs system/Patient.r


def test_chained_search_needs_a_search_scope_on_the_chained_type(auth_client, tokens, consortium):
    headers = tokens.headers("reader-a", "system/Task.rs")
    response = auth_client.get("/Task?focus:ServiceRequest.performer=Organization/org-b", headers=headers)
    assert response.status_code == 403
