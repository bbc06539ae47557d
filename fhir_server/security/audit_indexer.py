"""The AuditEvent indexer as a process of its own: ``python -m fhir_server.security.audit_indexer PID [BACKLOG]``.

Indexing a journaled request record as a searchable AuditEvent costs about twice the CPU of the
read it records. In the server process that work would hold the interpreter lock against the
requests themselves; here it runs beside them, at a lower priority. It opens the store the
settings name (``FHIR_STORE``, a SQLite file or MongoDB: stores several processes share; passed
in the environment rather than on the command line anyone may read, since a MongoDB URL may hold
a password) and indexes journal entries oldest first, and exits on SIGTERM after the entry in
hand, or when process ``PID`` (the server that started it) is gone.

While the server is busy, indexing would slow it down even from another core (the other core may
be a hyperthread of the same one, caches and memory bandwidth are shared, creates wait for the
indexer's write transactions; measured in docs/security.md § Cost), so entries wait
(:class:`Pace`): until the server is quiet, more than ``BACKLOG`` entries wait, or the oldest has
waited ``MAX_WAIT_SECONDS``. A burst is thus indexed after it; under load that lasts, the
indexer keeps up with the load, that far behind it. Nothing recorded is missed
meanwhile: whoever reads AuditEvents has the server index what waits first
(``AuditWriter.catch_up``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from ..config import Settings
from ..store import open_store
from .audit import index_next

log = logging.getLogger("fhir_server.audit")

#: seconds between looks at an empty journal (the writer journals at most every quarter second)
POLL_SECONDS = 0.1
#: niceness added: requests first on a core the indexer shares with the server (SCHED_IDLE, tried, could
#: leave it preempted while it holds the write lock; it measured the same)
NICENESS = 10
#: journal entries between two checkpoints of a SQLite store's WAL: 100 entries of 50 AuditEvents add
#: ~8,000 WAL pages, about what the server's checkpoint thread lets gather, below SQLite's automatic 20,000
CHECKPOINT_EVERY = 100
#: journal entries (of up to 50 records) that wait for a quiet server at most, unless the server says otherwise
BACKLOG = 400
#: seconds without a journal entry after which the server counts as quiet (it journals every ¼ s while busy)
QUIET_SECONDS = 0.5
#: seconds the oldest journal entry waits for a quiet server at most
MAX_WAIT_SECONDS = 10.0


class Pace:
    """May the indexer take the next journal entry? At once while the server is quiet (nothing journaled for
    ``quiet`` seconds); while it is busy, only while more than ``limit`` entries wait or the oldest has waited
    ``max_wait`` seconds (since this indexer first saw it)."""

    def __init__(self, limit: int = BACKLOG, quiet: float = QUIET_SECONDS, max_wait: float = MAX_WAIT_SECONDS,
                 clock=time.monotonic):
        self.limit, self.quiet, self.max_wait, self.clock = limit, quiet, max_wait, clock
        self._count, self._journaled = 0, clock()  # entries seen at the last look, when the server last journaled
        self._oldest, self._since = None, 0.0

    def go(self, store) -> bool:
        with store.session() as session:
            count = session.count_audit_records()
            head = session.pending_audit_records(1)[0] if count else None
        now = self.clock()
        if count > self._count:  # the server journaled since the last look (entries taken were counted off)
            self._journaled = now
        self._count = count
        if head is None:
            return False
        if head != self._oldest:  # position and entry: SQLite numbers a new entry 1 again once all are gone
            self._oldest, self._since = head, now
        return now - self._journaled >= self.quiet or count > self.limit or now - self._since >= self.max_wait

    def took(self) -> None:
        """The indexer took an entry off the journal."""
        self._count -= 1


def run(url: str, parent: int, stopping: threading.Event | None = None, pace: Pace | None = None) -> None:
    """Index the journal of the store at ``url``, at ``pace``, until ``stopping`` is set or process ``parent``
    is gone."""
    stopping = stopping or threading.Event()
    pace = pace or Pace()
    # a background store: its writes let the server's go first, and the WAL is checkpointed here between
    # entries, off the write lock, rather than by a thread of its own waking every ~250 AuditEvents
    store = open_store(url, background=True)
    checkpoint = getattr(store, "checkpoint", None)
    indexed = 0
    try:
        while not stopping.is_set() and os.getppid() == parent:
            try:
                if pace.go(store) and index_next(store):
                    pace.took()
                    indexed += 1
                    if checkpoint is not None and indexed % CHECKPOINT_EVERY == 0:
                        checkpoint()
                else:
                    stopping.wait(POLL_SECONDS)
            except Exception:  # e.g. the store busy beyond its timeout: the entry stays for the next try
                log.exception("could not index an audit journal entry")
                stopping.wait(1.0)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    parent, limit = args[0], int(args[1]) if len(args) > 1 else BACKLOG
    url = Settings.from_env().resolved_store_url
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s audit-indexer: %(message)s")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())  # Ctrl-C reaches the whole process group
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    run(url, int(parent), stopping, Pace(limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
