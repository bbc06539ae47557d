"""AuditEvent content and the background writer."""

from __future__ import annotations

import orjson

from fhir_server.security.audit import ROW_FIELDS, AuditWriter, audit_event, audit_record, event_of

from .conftest import audit_count, audit_events, journaled, read_event


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


def test_a_request_row_makes_the_audit_event_its_dict_makes():
    """The middleware records a tuple per request (``ROW_FIELDS``); journaled, it is a JSON array."""
    event = {"at": 1795000000000000000, "method": "GET", "path": "/Task", "address": "10.0.0.7", "status": 403,
             "interaction": "search-type", "resource_type": "Task", "id": None, "query": "status=requested",
             "client_id": "hosp-a", "organization": "Organization/org-a",
             "practitioner_role": "PractitionerRole/pr-a", "reason": "no scope"}
    row = (1795000000000000000, "GET", "/Task", "10.0.0.7", 403, "search-type", "Task", None, "status=requested",
           ("hosp-a", "Organization/org-a", "PractitionerRole/pr-a"), "no scope")
    assert len(row) == len(ROW_FIELDS)
    assert event_of(row) == event and event_of(orjson.loads(orjson.dumps(row))) == event
    unauthenticated = event_of((1, "GET", "/Task", None, 401, "search-type", "Task", None, None, None, "no token"))
    assert audit_event(unauthenticated)["agent"][0]["who"] == {"display": "unauthenticated"}


def test_writer_stores_events_as_searchable_audit_events(store):
    writer = AuditWriter(store)
    for status in (200, 403):
        writer.record({"interaction": "search-type", "method": "GET", "path": "/Task", "status": status,
                       "resource_type": "Task", "query": "status=requested", "client_id": "hosp-a",
                       "organization": "Organization/org-a"})
    # a request row, as the middleware records it, in the same journal entry
    writer.record((1795000000000000000, "GET", "/Task/t1", "10.0.0.7", 404, "read", "Task", "t1", None,
                   ("hosp-a", "Organization/org-a", None), "hidden"))
    writer.close()
    from fhir_server.search import find

    with store.session() as session:
        failed = find(session, "AuditEvent", "outcome=4&altid=hosp-a")
        everything = find(session, "AuditEvent", "agent=Organization/org-a")
        read = find(session, "AuditEvent", "entity=Task/t1&subtype=read")
    assert len(failed) == 2 and len(everything) == 3 and len(read) == 1


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


def test_a_busy_server_journals_records_and_indexes_them_once_idle(store):
    import time

    from tests.conftest import wait_for

    writer = AuditWriter(store, idle_seconds=0.3)
    try:
        for n in range(3):
            writer.record(read_event(f"/Task/t{n}"))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # requests keep coming: nothing is indexed
            writer.active()
            time.sleep(0.02)
        assert journaled(store) == 1 and audit_count(store) == 0  # one entry holds the three records
        wait_for(lambda: audit_count(store) == 3, seconds=5)  # idle: indexed without being asked
        assert journaled(store) == 0 and not writer.pending
    finally:
        writer.close()


def test_catch_up_makes_everything_recorded_searchable_at_once(store):
    writer = AuditWriter(store, idle_seconds=3600)
    try:
        for n in range(120):  # more than one journal entry
            writer.record(read_event(f"/Task/t{n}"))
        writer.active()
        assert writer.catch_up(timeout=30)
        with store.session() as session:
            assert session.history("AuditEvent", count=1)[1] == 120 and session.count_audit_records() == 0
        assert audit_count(store, "subtype=read&entity=Task/t119") == 1
    finally:
        writer.close()


def test_a_journal_left_behind_is_indexed_once_on_the_next_start(store):
    """Entries journaled before a stop (or a crash after some of their AuditEvents were written) become one
    AuditEvent per record."""
    from fhir_server.formats import json as fjson

    records = [{**read_event(f"/Task/t{n}"), "recorded": "2026-12-02T01:00:00Z"} for n in range(3)]
    with store.session(write=True) as session:
        session.write(*audit_record(records[0], "journaled-0"), 0)  # written, but its entry was not dropped
        session.append_audit_records([fjson.dumps({"id": "journaled", "records": records})])
    writer = AuditWriter(store, idle_seconds=3600)
    try:
        assert writer.pending
        writer.catch_up(timeout=30)
        assert audit_count(store) == 3 and journaled(store) == 0
        assert audit_count(store, "_id=journaled-2&entity=Task/t2") == 1
    finally:
        writer.close()


def test_an_administrator_search_sees_requests_of_a_server_that_was_never_idle(auth_client, auth_app, tokens,
                                                                               consortium):
    auth_app.state.audit.idle_seconds = 3600  # only a catch-up indexes
    member, admin = tokens.headers("hosp-a"), tokens.headers("platform")
    for _ in range(3):
        assert auth_client.get("/ServiceRequest/sr1", headers=member).status_code == 200
    found = auth_client.get("/AuditEvent?entity=ServiceRequest/sr1&altid=hosp-a", headers=admin).json()
    assert found["total"] == 3


def test_under_load_the_writer_journals_without_waiting_for_a_batch_to_gather(store, monkeypatch):
    """A full batch already waiting is journaled at once: sleeping between batches would let a busy server's
    queue outgrow the writer (and, once full, drop records)."""
    import fhir_server.security.audit as audit

    sleeps = []
    real_sleep = audit.time.sleep
    monkeypatch.setattr(audit.time, "sleep", lambda seconds: (sleeps.append(seconds), real_sleep(seconds)))
    writer = AuditWriter(store, idle_seconds=3600)
    try:
        for n in range(5 * audit._BATCH):
            writer.record(read_event(f"/Task/t{n}"))
        assert writer.catch_up(timeout=60)
        with store.session() as session:
            assert session.history("AuditEvent", count=1)[1] == 5 * audit._BATCH and writer.dropped == 0
        assert len(sleeps) <= 2, sleeps  # the first record's gathering, not one wait per batch
    finally:
        writer.close()
