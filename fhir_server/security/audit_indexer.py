"""The AuditEvent indexer as a process of its own: ``python -m fhir_server.security.audit_indexer PID``.

Indexing a journaled request record as a searchable AuditEvent costs about as much CPU as the
read it records. In the server process that work would hold the interpreter lock against the
requests themselves; here it runs beside them, on another core when there is one, at a lower
priority, so that on a busy core the requests go first (the server's writer thread takes over
past its backlog bound). It opens the store the settings name (``FHIR_STORE``, a SQLite
file or MongoDB: stores several processes share; passed in the environment rather than on the
command line anyone may read, since a MongoDB URL may hold a password), indexes journal entries
oldest first as they come, and exits on SIGTERM after the entry in hand, or when process ``PID``
(the server that started it) is gone.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

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


def run(url: str, parent: int, stopping: threading.Event | None = None) -> None:
    stopping = stopping or threading.Event()
    # a background store: its writes let the server's go first, and the WAL is checkpointed here between
    # entries, off the write lock, rather than by a thread of its own waking every ~250 AuditEvents
    store = open_store(url, background=True)
    checkpoint = getattr(store, "checkpoint", None)
    indexed = 0
    try:
        while not stopping.is_set() and os.getppid() == parent:
            try:
                if index_next(store):
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
    parent = (argv if argv is not None else sys.argv[1:])[0]
    url = Settings.from_env().resolved_store_url
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s audit-indexer: %(message)s")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())  # Ctrl-C reaches the whole process group
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    run(url, int(parent), stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
