"""The embedded SQLite backend: one database file, WAL, one transaction per write session.

Tables: ``history`` (every version with its body, under a global sequence number giving a
stable order), ``resources`` (which version is current, tombstones included, pointing at its
history row: a body is stored once) and the search-index tables owned by
:mod:`fhir_server.store.sqlite_index`. Write sessions queue on the file's write lock
(:mod:`fhir_server.store.write_lock`) and start with ``BEGIN IMMEDIATE``, so that
check-then-write sequences (conditional create, If-Match) are serialised across threads and
processes.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Collection
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .base import StoredResource, VersionConflict
from .checkpointer import Checkpointer
from .sqlite_index import SQLiteIndex, references_any_query
from .write_lock import WriteLock

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS resources (
        rtype TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        last_updated TEXT NOT NULL, deleted INTEGER NOT NULL, method TEXT NOT NULL,
        seq INTEGER NOT NULL, rid INTEGER,
        PRIMARY KEY (rtype, id)) WITHOUT ROWID""",
    # ``rid``: the current version's rid in the search index (``idx_resource``; None while deleted), so a
    # read can ask the index about its resource without looking the type and id up there again
    # ``seq`` is the rowid: max + 1, so it only grows, since committed history rows are never
    # deleted (AUTOINCREMENT would add a write to ``sqlite_sequence`` to every commit)
    """CREATE TABLE IF NOT EXISTS history (
        seq INTEGER PRIMARY KEY,
        rtype TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        last_updated TEXT NOT NULL, deleted INTEGER NOT NULL, method TEXT NOT NULL,
        body BLOB NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS history_version ON history (rtype, id, version)",
    "CREATE INDEX IF NOT EXISTS history_type ON history (rtype, seq)",
    "CREATE INDEX IF NOT EXISTS history_updated ON history (last_updated)",
    "CREATE TABLE IF NOT EXISTS audit_journal (pos INTEGER PRIMARY KEY, record BLOB NOT NULL)",
]

#: how long a writer waits for the write lock (``write_lock``, then SQLite's) before "database is locked"
_BUSY_SECONDS = 30

#: databases written before bodies were stored once kept a copy in ``resources``; opening one
#: rebuilds that table without it (see ``_migrate``)
_RESOURCES_V2 = SCHEMA[0].replace("IF NOT EXISTS resources", "resources_v2")
_COLUMNS = "rtype, id, version, last_updated, deleted, body, method"
#: the current version's columns: its body lives once, in history, at the row ``seq`` names
_CURRENT_COLUMNS = "r.rtype, r.id, r.version, r.last_updated, r.deleted, h.body, r.method"
_CURRENT_FROM = " FROM resources r JOIN history h ON h.seq = r.seq"
CURRENT = f"SELECT {_CURRENT_COLUMNS}{_CURRENT_FROM}"


@functools.lru_cache(maxsize=256)
def _read_admitted_query(rows: Collection[tuple]) -> tuple[str, tuple]:
    """One resource's current version and, as an eighth column, whether its index holds one of ``rows``:
    ``references_any`` as a subquery of the read, by the ``rid`` the current version names, as (SQL,
    values) like :func:`references_any_query`."""
    exists, values = references_any_query(rows, rid="r.rid")
    return f"SELECT {_CURRENT_COLUMNS}, EXISTS({exists}){_CURRENT_FROM} WHERE r.rtype = ?1 AND r.id = ?2", values


def _record(row) -> StoredResource:
    return StoredResource(row[0], row[1], row[2], row[3], bool(row[4]), bytes(row[5]), row[6])


class SQLiteSession:
    def __init__(self, store: "SQLiteStore", conn: sqlite3.Connection):
        self.store = store
        self.conn = conn

    def read(self, resource_type: str, id: str) -> StoredResource | None:
        row = self.conn.execute(
            f"{CURRENT} WHERE r.rtype = ? AND r.id = ?", (resource_type, id)
        ).fetchone()
        return _record(row) if row else None

    def vread(self, resource_type: str, id: str, version: int) -> StoredResource | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM history WHERE rtype = ? AND id = ? AND version = ?",
            (resource_type, id, version),
        ).fetchone()
        return _record(row) if row else None

    def write(self, record: StoredResource, resource: dict | None, expected_version: int) -> None:
        conn = self.conn
        new = expected_version == 0
        rid = None
        if not new:
            current = conn.execute(
                "SELECT version, rid FROM resources WHERE rtype = ? AND id = ?", (record.resource_type, record.id)
            ).fetchone()
            if (current[0] if current else 0) != expected_version:
                raise VersionConflict(f"{record.resource_type}/{record.id}")
            rid = current[1]
        row = (record.resource_type, record.id, record.version, record.last_updated, int(record.deleted),
               record.method)
        try:
            cursor = conn.execute(
                "INSERT INTO history (rtype, id, version, last_updated, deleted, method, body) VALUES (?,?,?,?,?,?,?)",
                (*row, record.body))
        except sqlite3.IntegrityError:
            # a brand-new resource is proved new by history's unique (type, id, version), not by a
            # lookup: a version 1 already there means someone else created it (the failed INSERT
            # wrote nothing)
            raise VersionConflict(f"{record.resource_type}/{record.id}") from None
        try:
            conn.execute(
                f"INSERT {'' if new else 'OR REPLACE '}INTO resources"
                " (rtype, id, version, last_updated, deleted, method, seq, rid) VALUES (?,?,?,?,?,?,?,?)",
                (*row, cursor.lastrowid, rid))
        except sqlite3.IntegrityError:  # stored already, under a version this writer did not expect
            conn.execute("DELETE FROM history WHERE seq = ?", (cursor.lastrowid,))
            raise VersionConflict(f"{record.resource_type}/{record.id}") from None
        indexed = self.store.index.write(conn, record.resource_type, record.id,
                                         None if record.deleted else resource, record.last_updated, new=new)
        if indexed != rid:  # created, deleted or created again: the index gave it a rid, or took it back
            conn.execute("UPDATE resources SET rid = ? WHERE rtype = ? AND id = ?",
                         (indexed, record.resource_type, record.id))

    def create_many(self, prepared: list) -> int:
        """Write resources the store prepared (:meth:`SQLiteStore.prepare_new`), one statement per table;
        a type and id stored already is left as it is (and not counted)."""
        conn = self.conn
        ids: dict[str, list[str]] = {}
        for (resource_type, id, *_), _, _ in prepared:
            ids.setdefault(resource_type, []).append(id)
        stored = set()
        for resource_type, of_type in ids.items():
            for start in range(0, len(of_type), 500):
                chunk = of_type[start:start + 500]
                stored.update(conn.execute(f"SELECT rtype, id FROM resources WHERE rtype = ? AND id IN"
                                           f" ({', '.join('?' * len(chunk))})", (resource_type, *chunk)))
        fresh = []
        for item in prepared:
            key = (item[0][0], item[0][1])
            if key not in stored:
                stored.add(key)
                fresh.append(item)
        if not fresh:
            return 0
        first = self.last_sequence() + 1
        conn.executemany(
            "INSERT INTO history (seq, rtype, id, version, last_updated, deleted, method, body)"
            " VALUES (?,?,?,?,?,?,?,?)", [(first + n, *row, body) for n, (row, body, _) in enumerate(fresh)])
        first_rid = self.store.index.write_new(conn, [(row[0], row[1], rows) for row, _, rows in fresh])
        conn.executemany(
            "INSERT INTO resources (rtype, id, version, last_updated, deleted, method, seq, rid)"
            " VALUES (?,?,?,?,?,?,?,?)", [(*row, first + n, first_rid + n) for n, (row, _, _) in enumerate(fresh)])
        return len(fresh)

    def history(
        self,
        resource_type: str | None = None,
        id: str | None = None,
        since: str | None = None,
        count: int = 20,
        offset: int = 0,
        at_or_before: int | None = None,
    ) -> tuple[list[StoredResource], int]:
        where, args = [], []
        if resource_type:
            where.append("rtype = ?")
            args.append(resource_type)
        if id:
            where.append("id = ?")
            args.append(id)
        if since:
            where.append("last_updated >= ?")
            args.append(since)
        if at_or_before is not None:
            where.append("seq <= ?")
            args.append(at_or_before)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        total = self.conn.execute(f"SELECT count(*) FROM history {clause}", args).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM history {clause} ORDER BY seq DESC LIMIT ? OFFSET ?", [*args, count, offset]
        ).fetchall()
        return [_record(r) for r in rows], total

    def last_sequence(self) -> int:
        row = self.conn.execute("SELECT max(seq) FROM history").fetchone()
        return row[0] or 0

    def search(self, query):
        return self.store.index.search(self, query)

    def references_any(self, resource_type: str, id: str, rows: Collection[tuple]) -> bool:
        """Does the search index of ``resource_type/id`` hold one of ``rows``, each (parameter key, target
        type, target id), a hashable collection (an access plan's)? An access check by id asks the index a
        search would compare, without the body."""
        return self.store.index.references_any(self.conn, resource_type, id, rows)

    def read_admitted(self, resource_type: str, id: str, rows: Collection[tuple]) -> tuple[StoredResource | None, bool]:
        """:meth:`read` and :meth:`references_any` in one statement: a client's read by id and its access check."""
        if not rows:
            return self.read(resource_type, id), False
        sql, values = _read_admitted_query(rows)
        row = self.conn.execute(sql, (resource_type, id, *values)).fetchone()
        return (_record(row), bool(row[7])) if row else (None, False)

    def append_audit_records(self, records: list[bytes]) -> None:
        self.conn.executemany("INSERT INTO audit_journal (record) VALUES (?)", [(r,) for r in records])

    def pending_audit_records(self, limit: int) -> list[tuple[int, bytes]]:
        rows = self.conn.execute("SELECT pos, record FROM audit_journal ORDER BY pos LIMIT ?", (int(limit),))
        return [(pos, bytes(record)) for pos, record in rows]

    def remove_audit_records(self, positions: list[int]) -> None:
        self.conn.executemany("DELETE FROM audit_journal WHERE pos = ?", [(p,) for p in positions])

    def count_audit_records(self) -> int:
        return self.conn.execute("SELECT count(*) FROM audit_journal").fetchone()[0]


#: a ``resources`` row's rid in the search index, as an SQL expression (older layouts fill the column with it)
_INDEX_RID = "(SELECT i.rid FROM idx_resource i WHERE i.rtype = resources.rtype AND i.id = resources.id)"

#: older ``resources`` layouts, oldest first: whether a database needs the step (by the table's columns), and
#: the step's statements
_MIGRATIONS = (
    # drop the body copy an older table kept (its history row has the same body); a current row whose
    # ``seq`` does not name its own history row is pointed at the history row of its version, made from
    # the copy if history lacks it
    (lambda columns: "body" in columns, (
        "INSERT INTO history (rtype, id, version, last_updated, deleted, method, body)"
        " SELECT rtype, id, version, last_updated, deleted, method, body FROM resources r"
        " WHERE NOT EXISTS (SELECT 1 FROM history h WHERE h.rtype = r.rtype AND h.id = r.id"
        " AND h.version = r.version)",
        "UPDATE resources SET seq = (SELECT h.seq FROM history h WHERE h.rtype = resources.rtype"
        " AND h.id = resources.id AND h.version = resources.version)"
        " WHERE NOT EXISTS (SELECT 1 FROM history h WHERE h.seq = resources.seq"
        " AND h.rtype = resources.rtype AND h.id = resources.id)",
        _RESOURCES_V2,
        "INSERT INTO resources_v2 (rtype, id, version, last_updated, deleted, method, seq, rid)"
        f" SELECT rtype, id, version, last_updated, deleted, method, seq, {_INDEX_RID} FROM resources",
        "DROP TABLE resources",
        "ALTER TABLE resources_v2 RENAME TO resources",
    )),
    # the current row's rid in the search index, filled from it
    (lambda columns: "rid" not in columns, (
        "ALTER TABLE resources ADD COLUMN rid INTEGER",
        f"UPDATE resources SET rid = {_INDEX_RID}",
    )),
)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older ``resources`` table to the current layout: each step in one transaction, re-checked
    under the write lock, so processes opening the file together migrate it once."""
    def columns() -> set[str]:
        return {row[1] for row in conn.execute("PRAGMA table_info(resources)")}

    for needed, statements in _MIGRATIONS:
        if not needed(columns()):
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if needed(columns()):
                for statement in statements:
                    conn.execute(statement)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


class SQLiteStore:
    """SQLite backend; one connection per thread, WAL so readers never block the writer."""

    def __init__(self, path: str | Path, index: SQLiteIndex | None = None, background: bool = False):
        """``background``: this process writes bookkeeping off every request path (the AuditEvent indexer):
        its writes let the others' go first, and it checkpoints the WAL itself (:meth:`checkpoint`)
        rather than from a thread."""
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.index = index or SQLiteIndex()
        self.checkpointer = Checkpointer(self.path) if self.path != ":memory:" and not background else None
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.write_lock = WriteLock(self.path, background)
        conn = self._connection()
        for statement in SCHEMA + self.index.schema():
            conn.execute(statement)
        _migrate(conn)

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_SECONDS)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={_BUSY_SECONDS * 1000}")
            conn.execute("PRAGMA cache_size=-65536")
            # A write dirties ~35 pages (resource, history and search-index B-trees). The checkpointer
            # thread copies the WAL into the database every ~250 creates (~9,000 pages), off the
            # request path; the automatic checkpoint (page copy + fsync inside a COMMIT) is the backstop.
            # journal_size_limit trims the WAL file back after a checkpoint.
            conn.execute("PRAGMA wal_autocheckpoint=20000")
            conn.execute("PRAGMA journal_size_limit=67108864")
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def session(self, write: bool = False) -> Iterator[SQLiteSession]:
        conn = self._connection()
        if self._local.depth:
            # re-entrant: an inner unit of work joins the outer transaction
            if write and not self._local.writing:
                raise RuntimeError("cannot upgrade a read session to a write session")
            self._local.depth += 1
            try:
                yield self._local.session
            finally:
                self._local.depth -= 1
            return
        if write:
            self.write_lock.acquire(_BUSY_SECONDS)
            try:
                conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.write_lock.release()
                raise
        else:
            conn.execute("BEGIN")
        changes = conn.total_changes
        session = SQLiteSession(self, conn)
        self._local.depth, self._local.writing, self._local.session = 1, write, session
        try:
            yield session
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
            if write and self.checkpointer is not None:
                self.checkpointer.committed(conn.total_changes - changes)
        finally:
            self._local.depth, self._local.session = 0, None
            if write:
                self.write_lock.release()

    def prepare_new(self, items: list[tuple[StoredResource, dict]]) -> list:
        """Brand-new resources (version 1), each (record, resource), made ready for
        :meth:`SQLiteSession.create_many` outside any transaction: their rows and index rows."""
        by_type: dict[str, list] = {}
        for record, resource in items:
            if record.version != 1 or record.deleted:
                raise ValueError(f"{record.resource_type}/{record.id}: only new resources are created in bulk")
            by_type.setdefault(record.resource_type, []).append((record.id, resource, record.last_updated))
        index_rows = {resource_type: iter(self.index.prepare_new(resource_type, of_type))
                      for resource_type, of_type in by_type.items()}
        return [((record.resource_type, record.id, 1, record.last_updated, 0, record.method), record.body,
                 next(index_rows[record.resource_type])) for record, _ in items]

    def checkpoint(self) -> None:
        """Copy the WAL into the database now, in PASSIVE mode (writers go on): for a background store,
        between its write sessions, so that SQLite's automatic checkpoint does not run inside one of its
        commits while it holds the write lock."""
        self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()
        self.write_lock.close()
