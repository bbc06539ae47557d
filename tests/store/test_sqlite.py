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


def _rid_mismatches(path) -> list:
    """Current rows whose ``rid`` is not their own search-index rid (None while deleted)."""
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT r.rtype, r.id, r.deleted, r.rid, i.rid FROM resources r LEFT JOIN idx_resource i"
            " ON i.rtype = r.rtype AND i.id = r.id WHERE r.rid IS NOT i.rid OR (r.deleted = 1) != (r.rid IS NULL)"
        ).fetchall()


def test_current_rows_name_their_own_index_rid(tmp_path):
    """A read asks the index by the rid its current row names: deleting the newest resource frees its rid for
    the next one created, so each write keeps the current row's rid that resource's own, or a read would be
    admitted by another resource's references."""
    from fhir_server.search.registry import default_registry

    performer = default_registry().get("ServiceRequest", "performer").key
    path = tmp_path / "fhir.db"
    store = SQLiteStore(path)
    versions: dict[str, int] = {}

    def write(id: str, organization: str | None) -> None:
        version = versions.get(id, 0) + 1
        resource = {"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
                    "subject": {"reference": "Patient/p1"},
                    "performer": [{"reference": f"Organization/{organization}"}]}
        deleted = organization is None
        with store.session(write=True) as session:
            session.write(StoredResource("ServiceRequest", id, version, f"2026-01-01T00:00:{version:02d}Z", deleted,
                                         b"" if deleted else json.dumps(resource).encode()),
                          None if deleted else resource, version - 1)
        versions[id] = version
        assert _rid_mismatches(path) == []

    def admitted(id: str, organization: str) -> bool:
        with store.session() as session:
            rows = frozenset({(performer, "Organization", organization)})
            return session.read_admitted("ServiceRequest", id, rows)[1]

    try:
        write("a", "org-a")
        write("b", "org-b")  # the newest rid
        write("b", None)  # deleted: its rid is free again
        write("c", "org-c")  # takes b's old rid
        write("b", "org-x")  # created again, under a rid of its own
        assert admitted("b", "org-x") and not admitted("b", "org-c") and not admitted("b", "org-b")
        assert admitted("c", "org-c") and not admitted("c", "org-x")
        write("a", "org-y")  # an update keeps its rid
        assert admitted("a", "org-y") and not admitted("a", "org-a")
        prepared = store.prepare_new([(StoredResource("ServiceRequest", f"m{n}", 1, "2026-01-02T00:00:00Z", False,
                                                      b"{}", "POST"),
                                       {"resourceType": "ServiceRequest", "id": f"m{n}", "status": "active",
                                        "intent": "order", "subject": {"reference": "Patient/p1"},
                                        "performer": [{"reference": f"Organization/org-m{n}"}]}) for n in range(3)])
        with store.session(write=True) as session:
            assert session.create_many(prepared) == 3
        assert _rid_mismatches(path) == []
        assert admitted("m1", "org-m1") and not admitted("m1", "org-m2") and admitted("m2", "org-m2")
    finally:
        store.close()


def test_database_without_rids_opens_with_them(tmp_path):
    """A database written before current rows kept their index rid gets the column, filled from the index."""
    path = tmp_path / "fhir.db"
    store = SQLiteStore(path)
    for id, deleted in (("p1", False), ("p2", False), ("p2", True)):
        version = 2 if deleted else 1
        body = _body(id, version, "Li")
        with store.session(write=True) as session:
            session.write(StoredResource("Patient", id, version, f"2026-01-01T00:00:0{version}Z", deleted, body),
                          None if deleted else json.loads(body), version - 1)
    store.close()
    with sqlite3.connect(path) as conn:  # the layout before: no rid
        conn.execute(SCHEMA[0].replace("IF NOT EXISTS resources", "resources_old").replace(" rid INTEGER,", ""))
        conn.execute("INSERT INTO resources_old SELECT rtype, id, version, last_updated, deleted, method, seq"
                     " FROM resources")
        conn.execute("DROP TABLE resources")
        conn.execute("ALTER TABLE resources_old RENAME TO resources")
    assert "rid" not in _columns(path)
    SQLiteStore(path).close()
    assert "rid" in _columns(path) and _rid_mismatches(path) == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM resources WHERE rid IS NOT NULL").fetchone()[0] == 1
