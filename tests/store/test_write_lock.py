"""Writers of every thread and process on a SQLite file queue on its write lock, and give up as SQLite would."""

from __future__ import annotations

import fcntl
import json
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

import fhir_server.store.sqlite as sqlite_module
from fhir_server.store import StoredResource, VersionConflict
from fhir_server.store.sqlite import SQLiteStore
from tests.conftest import wait_for


def _patient_record(id: str) -> tuple[StoredResource, dict]:
    resource = {"resourceType": "Patient", "id": id, "meta": {"versionId": "1", "lastUpdated": "2026-12-04T10:00:00Z"}}
    return StoredResource("Patient", id, 1, "2026-12-04T10:00:00Z", False, json.dumps(resource).encode(), "POST"), \
        resource


_HOLD_IN_ANOTHER_PROCESS = """
import json, sys
from fhir_server.store.sqlite import SQLiteStore
from fhir_server.store import StoredResource
store = SQLiteStore(sys.argv[1])
resource = {"resourceType": "Patient", "id": "first", "meta": {"versionId": "1", "lastUpdated": "2026-12-04T10:00:00Z"}}
with store.session(write=True) as session:
    session.write(StoredResource("Patient", "first", 1, "2026-12-04T10:00:00Z", False, json.dumps(resource).encode(),
                                 "POST"), resource, 0)
    print("holding", flush=True)
    sys.stdin.readline()
store.close()
"""


def test_a_writer_queues_behind_another_process_and_goes_on_when_it_commits(tmp_path):
    """Writers of every process on the file queue on its write lock (``<file>-writelock``), so the second
    starts its transaction once the first has committed, and sees its write."""
    path = str(tmp_path / "fhir.db")
    store = SQLiteStore(path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_IN_ANOTHER_PROCESS, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        started, written = threading.Event(), []

        def write_second():
            with store.session(write=True) as session:
                started.set()
                written.append(session.read("Patient", "first") is not None)
                session.write(*_patient_record("second"), 0)

        writer = threading.Thread(target=write_second)
        writer.start()
        assert not started.wait(0.5)  # queued on the lock the other process holds
        holder.stdin.write("\n")
        holder.stdin.flush()
        writer.join(timeout=30)
        assert started.is_set() and written == [True]
        assert holder.wait(timeout=30) == 0
        with store.session() as session:
            assert session.read("Patient", "second") is not None
    finally:
        holder.kill()
        holder.wait()
        store.close()


def test_writers_wait_on_the_lock_file_that_every_process_of_the_server_takes(tmp_path):
    path = str(tmp_path / "fhir.db")
    store = SQLiteStore(path)
    done = threading.Event()

    def write():
        with store.session(write=True) as session:
            session.write(*_patient_record("waited"), 0)
        done.set()

    with open(path + "-writelock", "rb") as other:  # as another process's store would hold it
        fcntl.flock(other, fcntl.LOCK_EX)
        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.5)
        fcntl.flock(other, fcntl.LOCK_UN)
        writer.join(timeout=30)
    assert done.is_set()
    store.close()


def test_a_writer_kept_waiting_by_another_process_is_told_the_database_is_locked(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_module, "_BUSY_SECONDS", 0.2)
    path = str(tmp_path / "fhir.db")
    store = SQLiteStore(path)
    try:
        with open(path + "-writelock", "rb") as other:
            fcntl.flock(other, fcntl.LOCK_EX)
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                with store.session(write=True):
                    pass
        with store.session(write=True) as session:  # the failed attempt let go of the thread lock too
            session.write(*_patient_record("after"), 0)
    finally:
        store.close()


def test_a_writer_kept_waiting_too_long_is_told_the_database_is_locked(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_module, "_BUSY_SECONDS", 0.2)
    store = SQLiteStore(str(tmp_path / "fhir.db"))
    entered, leave = threading.Event(), threading.Event()

    def hold():
        with store.session(write=True):
            entered.set()
            leave.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(10)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            with store.session(write=True):
                pass
    finally:
        leave.set()
        holder.join(timeout=10)
    with store.session(write=True) as session:  # the holder released it; so did the failed attempt
        session.write(*_patient_record("after"), 0)
    store.close()


def test_a_failed_write_session_releases_the_write_lock(tmp_path):
    store = SQLiteStore(str(tmp_path / "fhir.db"))
    try:
        with store.session(write=True) as session:
            session.write(*_patient_record("twice"), 0)
        with pytest.raises(VersionConflict), store.session(write=True) as session:
            session.write(*_patient_record("twice"), 0)  # version 1 again: a conflict, rolled back
        with store.session(write=True) as session:
            session.write(*_patient_record("next"), 0)
    finally:
        store.close()


def test_a_background_writer_lets_a_waiting_writer_go_first(tmp_path):
    """The AuditEvent indexer's store is a background one: once the lock is free, a server writer that was
    waiting takes it before the indexer, however soon the indexer asks again."""
    path = str(tmp_path / "fhir.db")
    server, indexer = SQLiteStore(path), SQLiteStore(path, background=True)
    order: list[str] = []

    def write(store, name):
        with store.session(write=True) as session:
            order.append(name)
            session.write(*_patient_record(name), 0)

    def someone_waits() -> bool:
        with open(path + "-writers-waiting", "rb") as waiting:
            try:
                fcntl.flock(waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(waiting, fcntl.LOCK_UN)
            return False

    try:
        with open(path + "-writelock", "rb") as other:  # a third process writing
            fcntl.flock(other, fcntl.LOCK_EX)
            waiting = threading.Thread(target=write, args=(server, "server"))
            waiting.start()
            wait_for(someone_waits, seconds=10)
            background = threading.Thread(target=write, args=(indexer, "indexer"))
            background.start()
            time.sleep(0.3)
            assert not order  # both held back
            fcntl.flock(other, fcntl.LOCK_UN)
            waiting.join(timeout=30)
            background.join(timeout=30)
        assert order == ["server", "indexer"]
        with indexer.session(write=True) as session:  # nobody waits: the background writer goes at once
            session.write(*_patient_record("alone"), 0)
    finally:
        server.close()
        indexer.close()

