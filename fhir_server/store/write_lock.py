"""Who may write next to a SQLite file, among this process's threads and the other processes on it.

SQLite lets one writer in at a time and makes the others retry from its busy handler, which
sleeps 1, 2, 5, 10… ms between tries. A server whose event-loop thread sleeps there serves
nothing meanwhile, and with the AuditEvent indexer process committing beside it ~100 times a
second its creates would keep meeting those sleeps. Write sessions therefore queue here before
``BEGIN IMMEDIATE``: on a thread lock, so a thread of this process starts the moment the last one
is done, then on ``flock`` of ``<database>-writelock``, retried at 50 µs rising to 1 ms, so a
writer of another process waits about as long as the one ahead of it writes. The kernel drops a
dead holder's ``flock``; a writer that does not take this lock still meets SQLite's own.

A *background* writer (the indexer) lets the others go first: while one waits it holds a shared
``flock`` on ``<database>-writers-waiting``, and a background writer takes the lock only when it
can briefly lock that file exclusively, i.e. when nobody waits. Without this the indexer, which
asks again ~0.1 ms after each commit, would win most races against a server polling every 1 ms,
and a create could wait out several of its transactions.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

try:
    import fcntl
except ImportError:  # not POSIX: other processes are met by SQLite's busy handler alone
    fcntl = None

_FIRST_RETRY, _LONGEST_RETRY = 50e-6, 1e-3


class WriteLock:
    def __init__(self, path: str, background: bool = False):
        self._threads = threading.Lock()
        self._background = background
        self._fd = self._waiting = None
        if path != ":memory:" and fcntl is not None:
            self._fd = os.open(path + "-writelock", os.O_RDWR | os.O_CREAT, 0o644)
            self._waiting = os.open(path + "-writers-waiting", os.O_RDWR | os.O_CREAT, 0o644)

    def acquire(self, timeout: float) -> None:
        """Wait for the lock at most ``timeout`` seconds, then raise "database is locked" as SQLite would."""
        if not self._threads.acquire(timeout=timeout):
            raise sqlite3.OperationalError("database is locked")
        if self._fd is None:
            return
        try:
            if self._background:
                self._retry(timeout, self._take_when_nobody_waits)
                return
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:  # another process writes: wait, and say so to background writers
                fcntl.flock(self._waiting, fcntl.LOCK_SH)
                try:
                    self._retry(timeout, lambda: fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB))
                finally:
                    fcntl.flock(self._waiting, fcntl.LOCK_UN)
        except BaseException:
            self._threads.release()
            raise

    def _take_when_nobody_waits(self) -> None:
        fcntl.flock(self._waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while someone waits
        fcntl.flock(self._waiting, fcntl.LOCK_UN)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @staticmethod
    def _retry(timeout: float, attempt) -> None:
        deadline, delay = time.monotonic() + timeout, _FIRST_RETRY
        while True:
            try:
                attempt()
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
            time.sleep(delay)
            delay = min(delay * 2, _LONGEST_RETRY)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            os.close(self._waiting)
            self._fd = self._waiting = None
