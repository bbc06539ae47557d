"""The WAL checkpoint thread of the SQLite store (fhir_server/store/checkpointer.py)."""

from fhir_server.formats import json as fjson
from fhir_server.repository import new_id
from fhir_server.store import checkpointer
from fhir_server.store.base import StoredResource
from fhir_server.store.sqlite import SQLiteStore
from tests.conftest import wait_for


def _write(store: SQLiteStore, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        id = new_id()
        resource = {"resourceType": "Patient", "id": id, "active": True}
        with store.session(write=True) as session:
            session.write(StoredResource("Patient", id, 1, "2026-01-01T00:00:00Z", False, fjson.dumps(resource),
                                         "POST"), resource, 0)
        ids.append(id)
    return ids


def test_the_wal_is_copied_and_restarted_off_the_writing_thread(tmp_path, monkeypatch):
    store = SQLiteStore(tmp_path / "fhir.db")
    try:
        ids = _write(store, 1)
        per_write = store._connection().total_changes  # rows one create changes
        monkeypatch.setattr(checkpointer, "EVERY", 20 * per_write)
        ids += _write(store, 18)
        assert store.checkpointer._thread is None  # no thread before the first round is due
        ids += _write(store, 1)
        wait_for(lambda: store.checkpointer.completed >= 1)
        # the WAL was reset: the next write starts it from the beginning, so it holds one transaction's pages
        ids += _write(store, 1)
        frames = store._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        assert 0 < frames < 20
        with store.session() as session:
            assert all(session.read("Patient", id) is not None for id in ids)
    finally:
        store.close()
    assert store.checkpointer._thread is None or not store.checkpointer._thread.is_alive()
    reopened = SQLiteStore(tmp_path / "fhir.db")
    try:
        with reopened.session() as session:
            assert all(session.read("Patient", id) is not None for id in ids)
    finally:
        reopened.close()


def test_an_in_memory_store_has_no_checkpointer():
    store = SQLiteStore(":memory:")
    try:
        assert store.checkpointer is None
        _write(store, 3)
    finally:
        store.close()
