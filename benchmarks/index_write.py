"""What one create costs the SQLite store, and how much of it is the search index.

Writes ``--count`` copies of ``data/servicerequest.json`` (fresh ids) through
:class:`fhir_server.store.sqlite.SQLiteStore`, one write transaction each, and prints the CPU
microseconds spent inside the transaction and in its COMMIT, and the WAL frames (dirtied pages)
a commit writes. ``--no-index`` repeats it with the search index switched off, so the
difference is the index's share. Pages, not rows, drive the commit: a value index row lands on
its own leaf page, while rows appended in ``rid`` order share one.

    python benchmarks/index_write.py
    python benchmarks/index_write.py --no-index
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from fhir_server.formats import json as fjson
from fhir_server.repository import new_id
from fhir_server.store.base import StoredResource
from fhir_server.store.sqlite import SQLiteStore
from fhir_server.store.sqlite_index import SQLiteIndex

DATA = Path(__file__).resolve().parent / "data"


class _NoIndex(SQLiteIndex):
    def write(self, conn, resource_type, id, resource, last_updated, new=False) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="measured writes (after as many warm-up writes)")
    parser.add_argument("--no-index", action="store_true", help="skip the search index rows")
    args = parser.parse_args(argv)
    body = (DATA / "servicerequest.json").read_bytes()
    resource = fjson.loads(body)
    with tempfile.TemporaryDirectory(prefix="fhir-index-") as tmp:
        store = SQLiteStore(Path(tmp) / "fhir.db", _NoIndex() if args.no_index else None, background=True)
        conn = store._connection()

        def create() -> tuple[float, float]:
            record = StoredResource("ServiceRequest", new_id(), 1, "2026-01-01T00:00:00Z", False, body, "POST")
            session = store.session(write=True)
            start = time.process_time()
            session.__enter__().write(record, resource, 0)
            middle = time.process_time()
            session.__exit__(None, None, None)
            return middle - start, time.process_time() - middle

        for _ in range(args.count):
            create()
        inside = commit = 0.0
        for _ in range(args.count):
            a, b = create()
            inside, commit = inside + a, commit + b
        frames = []
        for _ in range(50):  # WAL frames of one commit: empty the log, write once, read the log's length
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            create()
            frames.append(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
        store.close()
    print(f"{'no index' if args.no_index else 'with index'}: write {inside / args.count * 1e6:.0f} µs CPU,"
          f" commit {commit / args.count * 1e6:.0f} µs CPU, {sum(frames) / len(frames):.1f} WAL frames per commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
