"""WAL checkpoints off the request path: a thread copies the WAL into the database file.

SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold: that request
copies thousands of WAL pages into the database file and waits for the fsync, and the event
loop serving every other request waits with it (the create benchmark's p99). Here the store
counts its write commits and, every ``EVERY`` of them, wakes a thread with a connection of its
own that first copies in PASSIVE mode (writers carry on; the GIL is released while SQLite
works), then, with little left, ends with a RESTART checkpoint, so the next writer starts the
WAL from its beginning again. The automatic checkpoint stays on at a higher threshold as a
backstop should this thread fall behind.

Measured (``benchmarks/rest.py --scenarios create``, alternating runs): 808–813 → 916–925 creates/s,
p99 73–81 → 31 ms.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("fhir_server.store")

#: write commits between two checkpoints (~35 WAL pages each: ~9,000 pages; fewer checkpoints copy a
#: page written by many commits once)
EVERY = 250
#: frames left after the PASSIVE rounds below which the blocking RESTART runs
_SMALL = 64


class Checkpointer:
    def __init__(self, path: str):
        self.path = path
        self._commits = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: checkpoints that reset the WAL
        self.completed = 0

    def committed(self) -> None:
        """A write transaction committed (called by the store; cheap, never blocks)."""
        self._commits += 1
        if self._commits % EVERY == 0:
            if self._thread is None:
                with self._lock:
                    if self._thread is None and not self._stopping:
                        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
                        self._thread.start()
            self._wake.set()

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # a RESTART waits for the writer of the moment and holds new ones back: never for long
        conn.execute("PRAGMA busy_timeout=100")
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    for _ in range(8):
                        _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        if frames - copied < _SMALL:
                            break
                    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                    if not busy:
                        self.completed += 1
                except sqlite3.Error as exc:  # e.g. busy beyond the timeout: the next wake-up tries again
                    log.debug("background checkpoint: %s", exc)
        finally:
            conn.close()
