"""WAL checkpoints off the request path: a thread copies the WAL into the database file.

SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold: that request
copies thousands of WAL pages into the database file and waits for the fsync, and the event
loop serving every other request waits with it (the create benchmark's p99). Here the store
counts the rows its write transactions change (a create ~16, a batch of 500 AuditEvents ~7,000)
and every ``EVERY`` rows wakes a thread with a connection of its own that first copies in
PASSIVE mode (writers carry on; the GIL is released while SQLite works), then, with little
left, ends with a RESTART checkpoint, so the next writer starts the WAL from its beginning
again. The automatic checkpoint stays on at a higher threshold as a backstop should this
thread fall behind. Rows rather than commits are counted so that large transactions (Bundles,
audit batches) do not outrun the thread to the backstop.

Measured (``benchmarks/rest.py``, alternating runs): creates 808–813 → 916–925/s, p99 73–81 →
~30 ms; 10-entry transactions' p99 ~220 → ~60 ms.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("fhir_server.store")

#: rows changed between two checkpoints (~250 creates, ~9,000 WAL pages: well below the automatic
#: checkpoint's 20,000; fewer checkpoints copy a page written by many commits once)
EVERY = 4000
#: frames left after the PASSIVE rounds below which the blocking RESTART runs
_SMALL = 64


class Checkpointer:
    def __init__(self, path: str):
        self.path = path
        self._changes = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: checkpoints that reset the WAL
        self.completed = 0

    def committed(self, changes: int) -> None:
        """A write transaction changing ``changes`` rows committed (called by the store; never blocks)."""
        self._changes += changes
        if self._changes >= EVERY:
            self._changes = 0
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
