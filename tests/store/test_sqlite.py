"""The SQLite layout: a body is stored once, and a database from the earlier layout opens migrated."""

from __future__ import annotations

import json
import sqlite3

from fhir_server.search import find
from fhir_server.store import StoredResource
from fhir_server.store.sqlite import SCHEMA, SQLiteStore

#: ``resources`` as databases before the body-once layout created it
OLD_RESOURCES = """CREATE TABLE resources (
    rtype TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
    last_updated TEXT NOT NULL, deleted INTEGER NOT NULL, method TEXT NOT NULL,
    seq INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (rtype, id)) WITHOUT ROWID"""


def _body(id: str, version: int, family: str) -> bytes:
    return json.dumps({"resourceType": "Patient", "id": id, "meta": {"versionId": str(version)},
                       "name": [{"family": family}]}).encode()


def _columns(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(resources)")]


def test_current_version_body_is_stored_once(tmp_path):
    store = SQLiteStore(tmp_path / "fhir.db")
    body = _body("p1", 1, "Li")
    with store.session(write=True) as session:
        session.write(StoredResource("Patient", "p1", 1, "2026-01-01T00:00:00Z", False, body, "POST"),
                      json.loads(body), 0)
    store.close()
    assert "body" not in _columns(tmp_path / "fhir.db")
    with sqlite3.connect(tmp_path / "fhir.db") as conn:
        assert conn.execute("SELECT count(*) FROM history WHERE body = ?", (body,)).fetchone()[0] == 1


def test_database_with_body_copies_opens_migrated(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(OLD_RESOURCES)
    for statement in SCHEMA[1:]:
        conn.execute(statement)
    history = "INSERT INTO history (rtype, id, version, last_updated, deleted, method, body) VALUES (?,?,?,?,?,?,?)"
    # p1: two versions, the current row names its history row (how every write stored it)
    conn.execute(history, ("Patient", "p1", 1, "2026-01-01T00:00:01Z", 0, "POST", _body("p1", 1, "Li")))
    seq = conn.execute(history, ("Patient", "p1", 2, "2026-01-01T00:00:02Z", 0, "PUT", _body("p1", 2, "Wang"))).lastrowid
    conn.execute("INSERT INTO resources VALUES (?,?,?,?,?,?,?,?)",
                 ("Patient", "p1", 2, "2026-01-01T00:00:02Z", 0, "PUT", seq, _body("p1", 2, "Wang")))
    # p2: a current row whose seq points elsewhere; p3: a current row history never got
    conn.execute("INSERT INTO resources VALUES (?,?,?,?,?,?,?,?)",
                 ("Patient", "p2", 1, "2026-01-01T00:00:03Z", 0, "POST", seq, _body("p2", 1, "Zhao")))
    conn.execute("INSERT INTO resources VALUES (?,?,?,?,?,?,?,?)",
                 ("Patient", "p3", 1, "2026-01-01T00:00:04Z", 0, "POST", 999, _body("p3", 1, "Sun")))
    conn.commit()
    conn.close()

    store = SQLiteStore(path)
    assert "body" not in _columns(path)
    with store.session() as session:
        assert session.read("Patient", "p1").body == _body("p1", 2, "Wang")
        assert session.read("Patient", "p2").body == _body("p2", 1, "Zhao")
        assert session.read("Patient", "p3").body == _body("p3", 1, "Sun")
        assert session.vread("Patient", "p1", 1).body == _body("p1", 1, "Li")
    body = _body("p1", 3, "Zhou")
    with store.session(write=True) as session:
        session.write(StoredResource("Patient", "p1", 3, "2026-01-01T00:00:05Z", False, body, "PUT"),
                      json.loads(body), 2)
        assert [r.id for r in find(session, "Patient", "family=Zhou")] == ["p1"]
    store.close()
    SQLiteStore(path).close()  # opening a migrated database again changes nothing
    assert "body" not in _columns(path)


def test_a_background_store_copies_its_wal_when_asked(tmp_path):
    path = str(tmp_path / "fhir.db")
    store = SQLiteStore(path, background=True)
    assert store.checkpointer is None

    def in_database_file() -> bool:  # the file alone, WAL ignored
        with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM resources WHERE id = 'walled'").fetchone()[0] == 1

    try:
        store.checkpoint()  # the schema, in the file from now on
        with store.session(write=True) as session:
            session.write(StoredResource("Patient", "walled", 1, "2026-12-04T10:00:00Z", False,
                                         _body("walled", 1, "Wang"), "POST"), None, 0)
        assert not in_database_file()
        store.checkpoint()
        assert in_database_file()
    finally:
        store.close()
