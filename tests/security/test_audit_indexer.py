"""The AuditEvent indexer process: it drains the journal the server writes, and stops with the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from fhir_server.config import Settings
from fhir_server.formats import json as fjson
from fhir_server.security import audit_indexer
from fhir_server.security.audit import AuditWriter
from fhir_server.store import open_store
from tests.conftest import BACKENDS, store_url, wait_for

from .conftest import audit_count, journaled, read_event


def _journal(store, entries: int, per_entry: int = 10) -> None:
    """``entries`` journal entries of hosp-a reading Task/t0, Task/t1, …"""
    with store.session(write=True) as session:
        session.append_audit_records([fjson.dumps({"id": f"e{k}", "records": [read_event(f"/Task/t{per_entry * k + n}")
                                                                              for n in range(per_entry)]})
                                      for k in range(entries)])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited
        return stat.read().split(") ", 1)[1][0] != "Z"


@pytest.fixture(params=[backend for backend in BACKENDS if backend != "mongomock"])  # stores processes share
def url(request, tmp_path):
    return store_url(request.param, tmp_path)


def test_the_indexer_turns_what_another_process_journaled_into_audit_events(url):
    server = open_store(url)
    _journal(server, 3)
    stopping = threading.Event()
    indexer = threading.Thread(target=audit_indexer.run, args=(url, os.getppid(), stopping))
    indexer.start()
    try:
        wait_for(lambda: journaled(server) == 0, seconds=20)
        assert audit_count(server) == 30 and audit_count(server, "entity=Task/t29&altid=hosp-a") == 1
    finally:
        stopping.set()
        indexer.join(timeout=10)
        server.close()
    assert not indexer.is_alive()


def test_a_writer_with_an_indexer_process_leaves_indexing_to_it(url):
    store = open_store(url)
    writer = AuditWriter(store, idle_seconds=3600, indexer_url=url)  # the writer thread itself never idles
    indexer = writer.indexer
    try:
        assert writer.indexer.poll() is None
        for n in range(120):
            writer.record(read_event(f"/Task/t{n}"))
        writer.active()
        wait_for(lambda: audit_count(store) == 120, seconds=30)  # no catch-up asked: the process indexed them
        assert journaled(store) == 0 and audit_count(store, "entity=Task/t119") == 1
    finally:
        writer.close()
        store.close()
    assert indexer.returncode == 0  # stopped on close


def test_the_writer_indexes_itself_once_its_indexer_is_gone(url):
    store = open_store(url)
    writer = AuditWriter(store, idle_seconds=0.2, indexer_url=url)
    try:
        writer.indexer.kill()
        writer.indexer.wait()
        for n in range(3):
            writer.record(read_event(f"/Task/t{n}"))
        wait_for(lambda: audit_count(store) == 3, seconds=10)  # idle: the writer thread indexed them
        assert writer.indexer is None
    finally:
        writer.close()
        store.close()


def _indexing(url, pace: audit_indexer.Pace):
    """An indexer at ``pace`` in a thread, and the event that stops it."""
    stopping = threading.Event()
    indexer = threading.Thread(target=audit_indexer.run, args=(url, os.getppid(), stopping), kwargs={"pace": pace})
    indexer.start()
    return indexer, stopping


def test_while_the_server_journals_entries_wait_up_to_the_backlog_bound(url, server):
    _journal(server, 5)
    done = threading.Event()

    def journal_while_busy():  # the server, busy: an entry every twentieth of a second
        for k in range(20):
            with server.session(write=True) as session:
                session.append_audit_records([fjson.dumps({"id": f"e{k + 100}", "records": [read_event("/Task/busy")]})])
            done.wait(0.05)

    journaling = threading.Thread(target=journal_while_busy)
    journaling.start()
    # never quiet for this one: it takes only what comes beyond four entries
    indexer, stopping = _indexing(url, audit_indexer.Pace(limit=4, quiet=3600, max_wait=3600))
    try:
        journaling.join()
        wait_for(lambda: journaled(server) == 4, seconds=20)
        stopping.wait(0.5)
        assert journaled(server) == 4 and audit_count(server) == 10 * 5 + 20 - 4 * 1  # the last four wait
    finally:
        done.set()
        stopping.set()
        journaling.join(timeout=10)
        indexer.join(timeout=10)
    indexer, stopping = _indexing(url, audit_indexer.Pace(limit=4, quiet=0.2, max_wait=3600))
    try:
        wait_for(lambda: journaled(server) == 0, seconds=20)  # quiet: all of it
        assert audit_count(server) == 70 and audit_count(server, "entity=Task/t49") == 1
    finally:
        stopping.set()
        indexer.join(timeout=10)


@pytest.fixture
def server(url):
    """The server's store, on which the tests below journal entries."""
    store = open_store(url)
    yield store
    store.close()


def _journal_one(store, id: str) -> None:
    with store.session(write=True) as session:
        session.append_audit_records([fjson.dumps({"id": id, "records": [read_event("/Task/t1")]})])


def _take_one(store, pace) -> None:
    """What the indexer does with the oldest entry, as far as ``pace`` sees it."""
    with store.session(write=True) as session:
        session.remove_audit_records([position for position, _ in session.pending_audit_records(1)])
    pace.took()


def test_pace_takes_entries_while_the_server_is_quiet_or_more_than_the_bound_wait(server):
    now = [0.0]
    pace = audit_indexer.Pace(limit=3, quiet=0.5, max_wait=3600, clock=lambda: now[0])
    assert not pace.go(server)  # nothing to take
    _journal_one(server, "a")
    now[0] = 0.4
    assert not pace.go(server)  # just journaled
    now[0] = 0.8
    assert not pace.go(server)  # 0.4 s quiet
    now[0] = 0.9
    assert pace.go(server)  # 0.5 s quiet
    _journal_one(server, "b")
    _journal_one(server, "c")
    now[0] = 1.0
    assert not pace.go(server)  # busy again, three entries: not more than the bound
    _journal_one(server, "d")
    now[0] = 1.1
    assert pace.go(server)  # four
    _take_one(server, pace)
    now[0] = 1.2
    assert not pace.go(server)  # three: taking one is not journaling, yet not quiet for long enough
    now[0] = 1.6
    assert pace.go(server)


def test_pace_lets_no_entry_wait_longer_than_the_longest_wait(server):
    now = [0.0]
    pace = audit_indexer.Pace(limit=100, quiet=0.5, max_wait=10, clock=lambda: now[0])
    for second in range(11):  # a server journaling every second, never quiet for long
        _journal_one(server, f"e{second}")
        now[0] = float(second)
        assert pace.go(server) == (second == 10)  # the oldest, first seen at 0 s, has waited 10 s
    _take_one(server, pace)
    _journal_one(server, "e11")
    now[0] = 11.0
    assert not pace.go(server)  # the next oldest (journaled at 1 s) first seen now
    now[0] = 20.0
    assert pace.go(server)  # quiet since


def test_the_indexer_stops_when_the_server_that_started_it_dies(url, tmp_path):
    open_store(url).close()
    started = tmp_path / "indexer.pid"
    server = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-m', 'fhir_server.security.audit_indexer', str(os.getpid())],\n"
        f"                     env={{**os.environ, 'FHIR_STORE': {url!r}}})\n"
        f"open({str(started)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n")])
    try:
        wait_for(lambda: started.exists() and started.read_text(), seconds=20)
        pid = int(started.read_text())
        wait_for(lambda: _alive(pid), seconds=10)
        server.send_signal(signal.SIGKILL)
        server.wait()
        wait_for(lambda: not _alive(pid), seconds=10)
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("choice, url, cpus, expected", [
    ("auto", "sqlite:////data/fhir.db", {0, 1}, "sqlite:////data/fhir.db"),
    ("auto", "sqlite:////data/fhir.db", {0}, None),  # one core: the thread indexes when idle
    ("process", "sqlite:////data/fhir.db", {0}, "sqlite:////data/fhir.db"),
    ("auto", "mongodb://db/fhir", {0, 1}, "mongodb://db/fhir"),
    ("auto", None, {0, 1}, None),  # a store object the app was given: nothing another process could open
    ("process", "mongomock://localhost/x", {0, 1}, None),
    ("process", "sqlite:///:memory:", {0, 1}, None),
    ("thread", "sqlite:////data/fhir.db", {0, 1}, None),
])
def test_settings_choose_where_audit_events_are_indexed(monkeypatch, choice, url, cpus, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cpus, raising=False)
    assert Settings(audit_indexer=choice).audit_indexer_url(url) == expected


def test_an_unknown_indexer_choice_is_refused():
    with pytest.raises(ValueError, match="FHIR_AUDIT_INDEXER"):
        Settings(audit_indexer="elsewhere").audit_indexer_url("sqlite:////data/fhir.db")


def test_a_served_app_starts_the_indexer_and_stops_it_on_shutdown(tmp_path):
    from fastapi.testclient import TestClient

    from fhir_server.app import create_app

    app = create_app(Settings(data_dir=tmp_path, base_url="http://testserver", audit_enabled=True,
                              audit_indexer="process", serve_core_search_parameters=False))
    indexer = app.state.audit.indexer
    with TestClient(app) as client:
        assert client.get("/Patient").status_code == 200
        store = open_store(f"sqlite:///{(tmp_path / 'fhir.db').resolve()}")
        try:
            wait_for(lambda: audit_count(store) == 1, seconds=20)
        finally:
            store.close()
    assert indexer.returncode == 0


def test_indexers_side_by_side_write_each_entry_once(tmp_path, monkeypatch):
    """Several workers on one SQLite file each start an indexer: an entry is taken again under the write lock,
    so no two of them write the same AuditEvents (and no one spends the time to find them written)."""
    from fhir_server.store.sqlite import SQLiteSession

    url = store_url("sqlite", tmp_path)
    server = open_store(url)
    _journal(server, 20)
    written = []
    real_create = SQLiteSession.create_many
    monkeypatch.setattr(SQLiteSession, "create_many", lambda session, prepared: (
        written.extend(row[1] for row, _, _ in prepared), real_create(session, prepared))[1])
    stopping = threading.Event()
    indexers = [threading.Thread(target=audit_indexer.run, args=(url, os.getppid(), stopping)) for _ in range(3)]
    for indexer in indexers:
        indexer.start()
    try:
        wait_for(lambda: journaled(server) == 0, seconds=30)
    finally:
        stopping.set()
        for indexer in indexers:
            indexer.join(timeout=10)
    assert audit_count(server) == 200 and sorted(written) == sorted(set(written)) and len(written) == 200
    server.close()
