"""AuditEvent content and the background writer."""

from __future__ import annotations

from fhir_server.security.audit import AuditWriter, audit_event

from .conftest import audit_events


def test_audit_event_records_who_what_when_outcome_and_address():
    event = audit_event({"interaction": "read", "method": "GET", "path": "/ServiceRequest/sr1", "status": 404,
                         "resource_type": "ServiceRequest", "id": "sr1", "client_id": "hosp-d",
                         "organization": "Organization/org-d", "address": "10.0.0.7", "recorded": "2026-11-23T10:00:00Z",
                         "reason": "hidden"})
    assert event["action"] == "R" and event["outcome"] == "4" and event["recorded"] == "2026-11-23T10:00:00Z"
    agent = event["agent"][0]
    assert agent["who"]["reference"] == "Organization/org-d" and agent["altId"] == "hosp-d"
    assert agent["network"] == {"address": "10.0.0.7", "type": "2"} and agent["requestor"] is True
    assert event["entity"][0]["what"]["reference"] == "ServiceRequest/sr1"
    assert event["subtype"][0]["code"] == "read" and "hidden" in event["outcomeDesc"]


def test_writer_stores_events_as_searchable_audit_events(store):
    writer = AuditWriter(store)
    for status in (200, 403):
        writer.record({"interaction": "search-type", "method": "GET", "path": "/Task", "status": status,
                       "resource_type": "Task", "query": "status=requested", "client_id": "hosp-a",
                       "organization": "Organization/org-a"})
    writer.close()
    from fhir_server.search import find

    with store.session() as session:
        failed = find(session, "AuditEvent", "outcome=4&altid=hosp-a")
        everything = find(session, "AuditEvent", "agent=Organization/org-a")
    assert len(failed) == 1 and len(everything) == 2


def test_every_api_request_is_audited_with_auth_on(auth_client, auth_app, tokens, consortium):
    headers = tokens.headers("hosp-a")  # the token request is audited too, so before counting
    before = len(audit_events(auth_app))
    auth_client.get("/ServiceRequest/sr1", headers=headers)
    auth_client.get("/ServiceRequest?status=active", headers=headers)
    auth_client.get("/Patient/p1")  # no token: refused
    events = audit_events(auth_app)
    assert len(events) - before == 3
    mine = [e for e in events if e["outcomeDesc"].split(" ", 1)[1] in (
        "GET /ServiceRequest/sr1", "GET /ServiceRequest", "GET /Patient/p1: no bearer token")]
    assert sorted(e["outcome"] for e in mine) == ["0", "0", "4"]


def test_audit_can_be_on_without_auth(tmp_path):
    from fastapi.testclient import TestClient

    from fhir_server.app import create_app
    from fhir_server.config import Settings
    from fhir_server.store import open_store

    app = create_app(Settings(data_dir=tmp_path, base_url="http://testserver", audit_enabled=True),
                     open_store(f"sqlite:///{tmp_path / 'fhir.db'}"))
    with TestClient(app) as client:
        assert client.get("/Patient").status_code == 200
        events = audit_events(app)
    assert len(events) == 1 and events[0]["agent"][0]["who"]["display"] == "unauthenticated"


def test_writer_keeps_every_event_on_a_store_of_one_write_per_session():
    import uuid

    import mongomock

    from fhir_server.search import find
    from fhir_server.store.mongo import MongoStore

    store = MongoStore(mongomock.MongoClient(), f"test_{uuid.uuid4().hex[:12]}", mode="single")
    try:
        writer = AuditWriter(store)
        for path in ("/Task", "/ServiceRequest", "/Patient"):
            writer.record({"interaction": "search-type", "method": "GET", "path": path, "status": 200,
                           "client_id": "hosp-a", "organization": "Organization/org-a"})
        writer.close()
        with store.session() as session:
            assert len(find(session, "AuditEvent", "altid=hosp-a")) == 3
    finally:
        store.close()
