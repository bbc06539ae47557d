"""AuditEvents for every read, search, write and refused attempt, written off the request path.

The middleware hands a small tuple per request (a request row, ``ROW_FIELDS``) to
:class:`AuditWriter`; a background thread stores batches of them in the store's audit journal.
Journal records become ``AuditEvent`` resources when the server is quiet, or once a bounded backlog
waits: in an indexer process of their own (:mod:`.audit_indexer`, on a host with more than one core)
or, on a single core or a store only this process can open, in the writer thread. Before anyone
reads AuditEvents the rest is indexed first. A request never waits for its audit record, and a burst
of requests does not share the CPU with indexing them. AuditEvents are ordinary resources:
administrators search them like any other (``AuditEvent?altid=client-a``,
``?entity=ServiceRequest/…``, ``?outcome=4``, ``?date=ge…``); the policy keeps everyone else out.
On shutdown everything recorded is indexed before the store closes.
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import orjson

from ..formats import json as fjson
from ..repository import instant, new_id, now_instant
from ..store.base import StoredResource, VersionConflict

log = logging.getLogger("fhir_server.audit")

_ACTION = {"create": "C", "read": "R", "vread": "R", "history-instance": "R", "history-type": "R",
           "history-system": "R", "search-type": "R", "search-system": "R", "update": "U", "patch": "U",
           "delete": "D"}
_BATCH = 500
_GATHER_SECONDS = 0.25


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _recorded(event: dict) -> str:
    """When the request was recorded: ``recorded`` as given, else the ``time_ns`` stamp of ``record``."""
    if event.get("recorded"):
        return event["recorded"]
    if event.get("at"):
        return instant(_EPOCH + timedelta(microseconds=event["at"] // 1000))
    return now_instant()


def outcome_code(status: int) -> str:
    """AuditEvent.outcome: 0 success, 4 minor failure (refused or invalid request), 8 serious failure."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


#: the parts every AuditEvent of a kind shares: one object each, never changed (an entry's AuditEvents are
#: serialised and indexed, then dropped)
_REST = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
         "display": "RESTful Operation"}
_LOGIN = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110114", "display": "User Authentication"}
_LOGIN_SUBTYPE = [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110122", "display": "Login"}]
_SOURCE = {"observer": {"display": "fhir-server"},
           "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]}
_AGENT_TYPES = {role: {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                                   "code": role}]} for role in ("dataprocessor", "humanuser")}
_ENTITY_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"}
_SUBTYPES: dict[str, list] = {}


def _subtype(interaction: str) -> list:
    subtype = _SUBTYPES.get(interaction)
    if subtype is None:
        subtype = [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}]
        if len(_SUBTYPES) < 64:  # the interactions are a short list; anything else is not kept
            _SUBTYPES[interaction] = subtype
    return subtype


def audit_event(event: dict) -> dict:
    """The AuditEvent resource for one request record (see ``SecurityMiddleware``)."""
    interaction = event.get("interaction") or "unknown"
    status = int(event.get("status") or 0)
    client_id, organization = event.get("client_id"), event.get("organization")
    agent: dict = {
        "type": _AGENT_TYPES["dataprocessor" if client_id else "humanuser"],
        "requestor": True,
        "who": ({"reference": organization, "display": client_id or ""}
                if organization else {"display": client_id or "unauthenticated"}),
    }
    if client_id:
        agent["altId"] = client_id
    if event.get("address"):
        agent["network"] = {"address": event["address"], "type": "2"}
    agents = [agent]
    if event.get("practitioner_role"):
        agents.append({"requestor": False, "who": {"reference": event["practitioner_role"]}})
    token = interaction == "token"
    reason = event.get("reason")
    resource: dict = {
        "resourceType": "AuditEvent",
        "type": _LOGIN if token else _REST,
        "subtype": _LOGIN_SUBTYPE if token else _subtype(interaction),
        "action": _ACTION.get(interaction, "E"),
        "recorded": _recorded(event),
        "outcome": outcome_code(status),
        "outcomeDesc": f"{status} {event.get('method', '')} {event.get('path', '')}"[:500]
                       + (f": {reason}" if reason else ""),
        "agent": agents,
        "source": _SOURCE,
    }
    entities = []
    if event.get("resource_type") and event.get("id"):
        entities.append({"what": {"reference": f"{event['resource_type']}/{event['id']}"}, "type": _ENTITY_TYPE})
    if event.get("query"):
        entities.append({"type": _ENTITY_TYPE, "name": event.get("resource_type") or "system",
                         "query": base64.b64encode(event["query"].encode("utf-8")[:4096]).decode("ascii")})
    if entities:
        resource["entity"] = entities
    return resource


def index_next(store) -> bool:
    """Turn the oldest journal entry into AuditEvents; False when the journal is empty.

    The entry's AuditEvents are built and their index rows extracted first (``prepare_new``), then
    written in one transaction that takes the oldest entry again: on SQLite under the write lock, so
    indexers side by side (the writer thread and the indexer process, or those of several workers)
    never write one entry twice; one that finds the entry gone leaves what it built. On a store
    whose write sessions hold a single write (MongoDB without transactions) one per record, the entry
    dropped once all its AuditEvents are written. An entry taken twice all the same, or left by a
    crash, still gives each AuditEvent once: their ids are fixed in the journal."""
    with store.session() as session:
        pending = session.pending_audit_records(1)
    if not pending:
        return False
    (position, entry), = pending
    if not getattr(store, "transactional", True):
        for record, resource in audit_records(entry):
            with store.session(write=True) as session:
                try:
                    session.write(record, resource, 0)
                except VersionConflict:
                    pass  # written before: its entry outlived a crash, or two indexers took it
        with store.session(write=True) as session:
            session.remove_audit_records([position])
        return True
    prepared = store.prepare_new(audit_records(entry))
    with store.session(write=True) as session:
        again = session.pending_audit_records(1)  # under the write lock: still the oldest entry?
        if again and again[0][0] == position:
            session.create_many(prepared)
            session.remove_audit_records([position])
    return True


#: the fields of a request row: the tuple the middleware records per request, cheaper to make and to journal
#: than the dict ``audit_event`` reads (``caller``: None or the caller's ``identity``)
ROW_FIELDS = ("at", "method", "path", "address", "status", "interaction", "resource_type", "id", "query", "caller",
              "reason")


def event_of(record) -> dict:
    """A recorded request as the dict ``audit_event`` reads: a dict as it is, a request row (a tuple, a list
    once journaled) by ``ROW_FIELDS``."""
    if isinstance(record, dict):
        return record
    event = dict(zip(ROW_FIELDS, record))
    caller = event.pop("caller")
    if caller:
        event["client_id"], event["organization"], event["practitioner_role"] = caller
    return event


def audit_records(entry: bytes) -> list[tuple[StoredResource, dict]]:
    """A journal entry's AuditEvents as new records, with the ids the journal fixed for them."""
    entry = orjson.loads(entry)  # written by _journal: strings and integers only, no decimal to keep exact
    stored = now_instant()  # one transaction stores them all
    return [audit_record(event_of(record), f"{entry['id']}-{n}", stored) for n, record in enumerate(entry["records"])]


def audit_record(event: dict, id: str, stored: str | None = None) -> tuple[StoredResource, dict]:
    """The AuditEvent ``id`` for one request record, ready to store as its version 1 (``stored``: its
    ``meta.lastUpdated``, now unless given)."""
    recorded = stored or now_instant()
    resource = {"resourceType": "AuditEvent", "id": id, "meta": {"versionId": "1", "lastUpdated": recorded},
                **audit_event(event)}
    return StoredResource("AuditEvent", id, 1, recorded, False, fjson.dumps(resource), "POST"), resource


class _CatchUp:
    """A request to the writer thread: index everything recorded so far, then set ``done``."""

    __slots__ = ("done",)

    def __init__(self):
        self.done = threading.Event()


class AuditWriter:
    """Records requests in two steps, so that auditing costs the request path next to nothing.

    1. *Journal*: the writer thread stores the queued records in the store's audit journal,
       ``per_entry`` records to a journal entry, one transaction per batch of up to 500 (a few
       µs per record); when less than a batch waits it lets one gather for a quarter second.
    2. *Index*: journal entries become ``AuditEvent`` resources (built, indexed, searchable;
       ~150 µs each, about twice what the read they record costs), one entry per transaction,
       while the server is quiet, or once more than ``max_backlog`` entries wait (~3 s of
       indexing). Given ``indexer_url`` (the store's URL), an indexer process of its own does it
       (:mod:`.audit_indexer`), off this process's interpreter lock and at a lower CPU priority;
       this thread steps in past twice the bound (an indexer starved of CPU, or gone).
       Otherwise this thread does it, while the server is idle (no request for
       ``idle_seconds``) or past the bound. Either way this thread indexes everything before
       anything that can read AuditEvents (:meth:`catch_up`, which the middleware calls for
       administrators' AuditEvent and system-level reads), so a search never misses a recorded
       request.

    AuditEvent ids are fixed in the journal (the entry's id and the record's place in it), so
    indexing an entry twice (a crash between writing its AuditEvents and dropping it, on a store
    without transactions) writes each AuditEvent once; see :func:`index_next` for indexers side by
    side.
    """

    def __init__(self, store, idle_seconds: float = 0.2, max_backlog: int = 400, per_entry: int = 50,
                 max_queued: int = 100000, indexer_url: str | None = None):
        self.store = store
        self.idle_seconds = idle_seconds
        self.max_backlog = max_backlog
        self.per_entry = per_entry
        self.max_queued = max_queued
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.dropped = 0
        self.last_activity = time.monotonic()
        with store.session() as session:
            #: journal entries not yet indexed as far as this writer knows (only the writer thread changes it;
            #: an indexer process drops entries unseen, so then it is an upper bound)
            self.backlog = session.count_audit_records()
        self.indexer = _start_indexer(indexer_url, max_backlog) if indexer_url else None
        log.info("audit trail on: AuditEvents indexed by %s", f"an indexer process (pid {self.indexer.pid})"
                 if self.indexer else "the server's audit thread while the server is idle")
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def active(self) -> None:
        """A request has started: an indexer in this thread waits until the server is idle again (the
        middleware tells only that one; the thread marks finished requests as it takes their records)."""
        self.last_activity = time.monotonic()

    def record(self, event: dict | tuple) -> None:
        """Queue one request record, a dict or a request row (see ``event_of``; its ``at``: ``time_ns()`` when
        it was made; without one, the AuditEvent says when it was indexed); never blocks the request (a full
        queue drops and counts)."""
        if self.queue.qsize() < self.max_queued:
            self.queue.put_nowait(event)
            return
        self.dropped += 1
        if self.dropped % 1000 == 1:
            log.error("audit queue full: %d audit records dropped so far", self.dropped)

    @property
    def pending(self) -> bool:
        """Is anything recorded not yet searchable as an AuditEvent? (With an indexer process, perhaps not.)"""
        return bool(self.backlog or self.queue.qsize())

    def catch_up(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far is an AuditEvent (searches, tests, shutdown)."""
        if not self._thread.is_alive():
            return False
        marker = _CatchUp()
        self.queue.put(marker)
        return marker.done.wait(timeout)

    def close(self) -> None:
        indexer, self.indexer = self.indexer, None
        if indexer is not None:
            _stop_indexer(indexer)
        if self._thread.is_alive():
            self.catch_up()
            self.queue.put(None)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=self.idle_seconds if self.backlog else None)
            except queue.Empty:
                first = _IDLE
            if first is None:
                return
            batch, markers = [], []
            if isinstance(first, _CatchUp):
                markers.append(first)
            elif first is not _IDLE:
                batch.append(first)
                # let a batch gather: one transaction (and one wake-up of this thread) per many requests;
                # under load a full batch is already waiting, and sleeping would let the queue outgrow the writer
                if self.queue.qsize() < _BATCH:
                    time.sleep(_GATHER_SECONDS)
            stop = False
            while len(batch) < _BATCH:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                (markers if isinstance(item, _CatchUp) else batch).append(item)
            if batch:  # requests finished since the last look: the server is not idle
                self.last_activity = time.monotonic()
            try:
                if batch:
                    self._journal(batch)
                self._index(everything=bool(markers))
            except Exception:  # the writer must survive a failing batch (e.g. store busy)
                log.exception("could not write %d audit records", len(batch))
            for marker in markers:
                marker.done.set()
            if stop:
                return

    def _journal(self, batch: list[dict]) -> None:
        size = self.per_entry
        entries = [fjson.dumps({"id": new_id(), "records": batch[i:i + size]}) for i in range(0, len(batch), size)]
        with self.store.session(write=True) as session:
            session.append_audit_records(entries)
        self.backlog += len(entries)

    def _idle(self) -> bool:
        return time.monotonic() - self.last_activity >= self.idle_seconds and self.queue.empty()

    def _index(self, everything: bool) -> None:
        """Turn journal entries into AuditEvents: all of them, while idle (no indexer process) or over the
        backlog bound."""
        indexer = self.indexer
        if indexer is not None and indexer.poll() is not None:
            log.error("the audit indexer process exited (%s): indexing in the server from now on", indexer.returncode)
            self.indexer = indexer = None
        bound = self.max_backlog if indexer is None else 2 * self.max_backlog  # the indexer's, then this one's
        if indexer is not None and self.backlog > bound and not everything:
            with self.store.session() as session:  # the indexer process drops entries this count never sees
                self.backlog = session.count_audit_records()
        while self.backlog and (everything or self.backlog > bound or (indexer is None and self._idle())):
            if not index_next(self.store):
                self.backlog = 0
                return
            self.backlog = max(0, self.backlog - 1)


def _start_indexer(url: str, backlog: int) -> subprocess.Popen:
    """The indexer process for the store at ``url``, running this very package, letting at most ``backlog``
    journal entries wait for a quiet server; it exits when this process does."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else ""), "FHIR_STORE": url}
    return subprocess.Popen([sys.executable, "-m", "fhir_server.security.audit_indexer", str(os.getpid()),
                             str(backlog)],
                            stdin=subprocess.DEVNULL, env=env)


def _stop_indexer(process: subprocess.Popen) -> None:
    """Ask the indexer to stop after the entry it is writing (SIGTERM), and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_IDLE = object()
