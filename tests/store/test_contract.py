"""The store contract: every backend (SQLite, mongomock, a real MongoDB when configured) passes it.

Read/vread/write with optimistic versions, tombstones, history (order, paging, ``since``,
snapshots) and all-or-nothing write sessions.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from fhir_server.search import find
from fhir_server.store import StoredResource, VersionConflict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spec"


def _patient(id: str = "example", **changes) -> dict:
    resource = json.loads((FIXTURES / "Patient-example.json").read_text())
    resource.update(id=id, **changes)
    return resource


def _record(resource: dict, version: int, when: str, method: str = "PUT") -> StoredResource:
    stamped = {**resource, "meta": {"versionId": str(version), "lastUpdated": when}}
    body = json.dumps(stamped, ensure_ascii=False).encode()
    return StoredResource(resource["resourceType"], resource["id"], version, when, False, body, method)


def _tombstone(resource_type: str, id: str, version: int, when: str) -> StoredResource:
    return StoredResource(resource_type, id, version, when, True, b"", "DELETE")


def _write(store, resource: dict, version: int, when: str, method: str = "PUT") -> StoredResource:
    record = _record(resource, version, when, method)
    with store.session(write=True) as session:
        session.write(record, json.loads(record.body), version - 1)
    return record


def _instant(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000000Z"


def test_unknown_resource_reads_as_none(store):
    with store.session() as session:
        assert session.read("Patient", "nobody") is None
        assert session.vread("Patient", "nobody", 1) is None


def test_write_then_read_and_vread_return_the_stored_bytes(store):
    record = _write(store, _patient(), 1, _instant(1), "POST")
    with store.session() as session:
        assert session.read("Patient", "example") == record
        assert session.vread("Patient", "example", 1) == record
        assert session.vread("Patient", "example", 2) is None


def test_update_keeps_every_version(store):
    first = _write(store, _patient(), 1, _instant(1))
    second = _write(store, _patient(gender="female"), 2, _instant(2))
    with store.session() as session:
        assert session.read("Patient", "example") == second
        assert session.vread("Patient", "example", 1) == first
        assert session.vread("Patient", "example", 2) == second


def test_stale_expected_version_is_a_conflict_and_writes_nothing(store):
    _write(store, _patient(), 1, _instant(1))
    _write(store, _patient(gender="female"), 2, _instant(2))
    stale = _record(_patient(gender="other"), 2, _instant(3))
    with pytest.raises(VersionConflict):
        with store.session(write=True) as session:
            session.write(stale, json.loads(stale.body), 1)
    with store.session() as session:
        assert session.read("Patient", "example").version == 2
        assert b"female" in session.read("Patient", "example").body
        assert session.history("Patient", "example")[1] == 2


def test_create_over_an_existing_resource_is_a_conflict(store):
    _write(store, _patient(), 1, _instant(1))
    again = _record(_patient(gender="other"), 1, _instant(2))
    with pytest.raises(VersionConflict):
        with store.session(write=True) as session:
            session.write(again, json.loads(again.body), 0)
    with store.session() as session:
        assert session.read("Patient", "example").last_updated == _instant(1)


def test_a_refused_create_leaves_nothing_in_a_session_that_goes_on(store):
    _write(store, _patient(), 1, _instant(1))
    with store.session(write=True) as session:
        for version in (1, 3):  # the version a create would get, and one no writer would expect
            again = _record(_patient(gender="other"), version, _instant(2))
            with pytest.raises(VersionConflict):
                session.write(again, json.loads(again.body), 0)
    with store.session() as session:
        assert session.read("Patient", "example").last_updated == _instant(1)
        assert session.history("Patient", "example")[1] == 1
        assert find(session, "Patient", "gender=other") == []


def test_delete_leaves_a_tombstone_and_the_resource_can_come_back(store):
    _write(store, _patient(), 1, _instant(1))
    with store.session(write=True) as session:
        session.write(_tombstone("Patient", "example", 2, _instant(2)), None, 1)
    with store.session() as session:
        current = session.read("Patient", "example")
        assert (current.deleted, current.version, current.body, current.method) == (True, 2, b"", "DELETE")
        assert session.vread("Patient", "example", 2).deleted
        assert not session.vread("Patient", "example", 1).deleted
    back = _write(store, _patient(gender="male"), 3, _instant(3))
    with store.session() as session:
        assert session.read("Patient", "example") == back


def test_history_is_newest_first_with_totals_and_paging(store):
    _write(store, _patient("a"), 1, _instant(1))
    _write(store, _patient("b"), 1, _instant(2))
    _write(store, _patient("a", gender="female"), 2, _instant(3))
    _write(store, {"resourceType": "Organization", "id": "o", "name": "县医院"}, 1, _instant(4))
    with store.session() as session:
        records, total = session.history()
        assert total == 4
        assert [(r.resource_type, r.id, r.version) for r in records] == [
            ("Organization", "o", 1), ("Patient", "a", 2), ("Patient", "b", 1), ("Patient", "a", 1)]
        records, total = session.history("Patient")
        assert total == 3 and [r.id for r in records] == ["a", "b", "a"]
        records, total = session.history("Patient", "a")
        assert total == 2 and [r.version for r in records] == [2, 1]
        records, total = session.history("Patient", count=1, offset=1)
        assert total == 3 and [(r.id, r.version) for r in records] == [("b", 1)]
        records, total = session.history(since=_instant(3))
        assert total == 2 and {r.id for r in records} == {"a", "o"}


def test_history_snapshot_ignores_later_writes(store):
    _write(store, _patient("a"), 1, _instant(1))
    _write(store, _patient("b"), 1, _instant(2))
    with store.session() as session:
        snapshot = session.last_sequence()
    _write(store, _patient("c"), 1, _instant(3))
    with store.session() as session:
        records, total = session.history(at_or_before=snapshot)
        assert total == 2 and [r.id for r in records] == ["b", "a"]
        assert session.last_sequence() > snapshot


def test_history_includes_deletions(store):
    _write(store, _patient(), 1, _instant(1))
    with store.session(write=True) as session:
        session.write(_tombstone("Patient", "example", 2, _instant(2)), None, 1)
    with store.session() as session:
        records, total = session.history("Patient", "example")
        assert total == 2 and records[0].deleted and records[0].method == "DELETE"


def test_a_write_session_that_fails_midway_leaves_nothing(store):
    _write(store, _patient("kept"), 1, _instant(1))
    first = _record(_patient("new"), 1, _instant(2), "POST")
    second = _record(_patient("kept", gender="female"), 2, _instant(2))
    with pytest.raises(RuntimeError, match="midway"):
        with store.session(write=True) as session:
            session.write(first, json.loads(first.body), 0)
            session.write(second, json.loads(second.body), 1)
            assert session.read("Patient", "new") == first  # a session reads its own writes
            raise RuntimeError("midway")
    with store.session() as session:
        assert session.read("Patient", "new") is None
        assert session.read("Patient", "kept").version == 1
        assert session.vread("Patient", "kept", 2) is None
        assert session.history()[1] == 1


def test_a_conflict_inside_a_session_rolls_back_its_earlier_writes(store):
    _write(store, _patient("kept"), 1, _instant(1))
    first = _record(_patient("new"), 1, _instant(2), "POST")
    stale = _record(_patient("kept", gender="female"), 3, _instant(2))
    with pytest.raises(VersionConflict):
        with store.session(write=True) as session:
            session.write(first, json.loads(first.body), 0)
            session.write(stale, json.loads(stale.body), 2)
    with store.session() as session:
        assert session.read("Patient", "new") is None
        assert session.read("Patient", "kept").version == 1


def test_a_nested_session_joins_the_outer_transaction(store):
    record = _record(_patient("inner"), 1, _instant(1), "POST")
    with pytest.raises(RuntimeError):
        with store.session(write=True) as outer:
            with store.session(write=True) as inner:
                inner.write(record, json.loads(record.body), 0)
            assert outer.read("Patient", "inner") == record
            raise RuntimeError("after the inner session")
    with store.session() as session:
        assert session.read("Patient", "inner") is None


def test_racing_writers_on_one_version_have_exactly_one_winner(store):
    _write(store, _patient("race"), 1, _instant(1))
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def writer(i: int) -> None:
        record = _record(_patient("race", gender=["male", "female", "other", "unknown"][i]), 2, _instant(2 + i))
        barrier.wait()
        try:
            with store.session(write=True) as session:
                session.write(record, json.loads(record.body), 1)
            outcomes.append("won")
        except VersionConflict:
            outcomes.append("lost")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    with store.session() as session:
        assert session.read("Patient", "race").version == 2
        assert session.history("Patient", "race")[1] == 2


def test_concurrent_conditional_creates_make_one_resource(store):
    from fhir_server.repository import Repository

    repository = Repository(store)
    barrier = threading.Barrier(6)
    created: list[bool] = []
    resource = {"resourceType": "Patient", "identifier": [{"system": "urn:oid:2.16.156.10011.1.3",
                                                            "value": "110105194912310021"}]}

    def create() -> None:
        barrier.wait()
        result = repository.create(dict(resource), if_none_exist="identifier=urn:oid:2.16.156.10011.1.3|"
                                                                  "110105194912310021")
        created.append(result.created)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(created) == [False] * 5 + [True]
    with store.session() as session:
        assert session.history("Patient")[1] == 1


def test_create_many_writes_new_resources_as_single_writes_would(store):
    """Bulk creation (AuditEvents): readable, in history and searchable like ``write``; an id stored already
    (or twice in the batch) is left as it is."""
    existing = _write(store, _patient("p0", gender="female"), 1, _instant(1), "POST")
    records = [_record(_patient(f"p{n}", gender="male"), 1, _instant(2), "POST") for n in range(4)]
    prepared = store.prepare_new([(record, json.loads(record.body)) for record in records + records[3:]])
    with store.session(write=True) as session:
        assert session.create_many(prepared) == 3
    with store.session() as session:
        assert session.read("Patient", "p0") == existing
        assert [session.read("Patient", f"p{n}") for n in range(1, 4)] == records[1:]
        assert session.history("Patient")[1] == 4
        assert sorted(r.id for r in find(session, "Patient", "gender=male")) == ["p1", "p2", "p3"]
        assert [r.id for r in find(session, "Patient", "gender=female")] == ["p0"]
        assert session.last_sequence() >= 4


def test_create_many_rolls_back_with_its_session_and_takes_new_resources_only(store):
    record = _record(_patient("bulk"), 1, _instant(1), "POST")
    with pytest.raises(RuntimeError, match="midway"):
        with store.session(write=True) as session:
            session.create_many(store.prepare_new([(record, json.loads(record.body))]))
            raise RuntimeError("midway")
    with store.session() as session:
        assert session.read("Patient", "bulk") is None and find(session, "Patient", "_id=bulk") == []
    second = _record(_patient("bulk"), 2, _instant(2))
    with pytest.raises(ValueError, match="new resources"):
        store.prepare_new([(second, json.loads(second.body))])


def test_audit_journal_keeps_records_in_order_until_removed(store):
    with store.session(write=True) as session:
        session.append_audit_records([b'{"n": 1}', b'{"n": 2}'])
        session.append_audit_records([b'{"n": 3}'])
    with store.session() as session:
        assert session.count_audit_records() == 3
        pending = session.pending_audit_records(2)
    assert [record for _, record in pending] == [b'{"n": 1}', b'{"n": 2}']
    with store.session(write=True) as session:
        session.remove_audit_records([position for position, _ in pending])
    with store.session() as session:
        assert [record for _, record in session.pending_audit_records(10)] == [b'{"n": 3}']


def test_audit_journal_appends_roll_back_with_their_session(store):
    if not getattr(store, "transactional", True):
        pytest.skip("this store has no multi-document transactions")
    with pytest.raises(RuntimeError):
        with store.session(write=True) as session:
            session.append_audit_records([b"{}"])
            raise RuntimeError("abort")
    with store.session() as session:
        assert session.count_audit_records() == 0
