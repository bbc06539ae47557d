"""AuditEvents for every read, search, write and refused attempt, written off the request path.

The middleware hands a small dict per request to :class:`AuditWriter`; a background thread
turns batches of them into ``AuditEvent`` resources and writes each batch in one store
transaction, so a request never waits for its audit record. AuditEvents are ordinary
resources: administrators search them like any other (``AuditEvent?altid=client-a``,
``?entity=ServiceRequest/…``, ``?outcome=4``, ``?date=ge…``); the policy keeps everyone
else out. On shutdown the queue is drained before the store closes.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import time
from datetime import datetime, timezone

from ..formats import json as fjson
from ..repository import new_id
from ..store.base import StoredResource

log = logging.getLogger("fhir_server.audit")

_ACTION = {"create": "C", "read": "R", "vread": "R", "history-instance": "R", "history-type": "R",
           "history-system": "R", "search-type": "R", "search-system": "R", "update": "U", "patch": "U",
           "delete": "D"}
_BATCH = 500
_GATHER_SECONDS = 0.25


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def outcome_code(status: int) -> str:
    """AuditEvent.outcome: 0 success, 4 minor failure (refused or invalid request), 8 serious failure."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def audit_event(event: dict) -> dict:
    """The AuditEvent resource for one request record (see ``SecurityMiddleware``)."""
    interaction = event.get("interaction") or "unknown"
    status = int(event.get("status") or 0)
    agent: dict = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                             "code": "dataprocessor" if event.get("client_id") else "humanuser"}]},
        "requestor": True,
        "who": ({"reference": event["organization"], "display": event.get("client_id") or ""}
                if event.get("organization") else {"display": event.get("client_id") or "unauthenticated"}),
    }
    if event.get("client_id"):
        agent["altId"] = event["client_id"]
    if event.get("address"):
        agent["network"] = {"address": event["address"], "type": "2"}
    agents = [agent]
    if event.get("practitioner_role"):
        agents.append({"requestor": False, "who": {"reference": event["practitioner_role"]}})
    resource: dict = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                 "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}],
        "action": _ACTION.get(interaction, "E"),
        "recorded": event.get("recorded") or _now(),
        "outcome": outcome_code(status),
        "outcomeDesc": f"{status} {event.get('method', '')} {event.get('path', '')}"[:500]
                       + (f": {event['reason']}" if event.get("reason") else ""),
        "agent": agents,
        "source": {"observer": {"display": "fhir-server"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
    }
    if interaction == "token":
        resource["type"] = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110114",
                            "display": "User Authentication"}
        resource["subtype"] = [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110122",
                                "display": "Login"}]
    entities = []
    if event.get("resource_type") and event.get("id"):
        entities.append({"what": {"reference": f"{event['resource_type']}/{event['id']}"},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"}})
    if event.get("query"):
        entities.append({"type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
                         "name": event.get("resource_type") or "system",
                         "query": base64.b64encode(event["query"].encode("utf-8")[:4096]).decode("ascii")})
    if entities:
        resource["entity"] = entities
    return resource


class AuditWriter:
    def __init__(self, store):
        self.store = store
        self.queue: queue.Queue = queue.Queue(maxsize=100000)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._stopping = False
        self._thread.start()

    def record(self, event: dict) -> None:
        """Queue one request record; never blocks the request (a full queue drops and counts)."""
        event.setdefault("recorded", _now())
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("audit queue full: %d audit records dropped so far", self.dropped)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is stored (tests, shutdown)."""
        self.queue.join()

    def close(self) -> None:
        if self._thread.is_alive():
            self.flush()
            self._stopping = True
            self.queue.put(None)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                self.queue.task_done()
                return
            # let a batch gather: one transaction (and one wake-up of this thread) per many requests
            time.sleep(_GATHER_SECONDS)
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)  # seen after this batch
                    self.queue.task_done()
                    break
                batch.append(item)
            try:
                self._write(batch)
            except Exception:  # the writer must survive a failing batch (e.g. store busy)
                log.exception("could not write %d audit events", len(batch))
            finally:
                for _ in batch:
                    self.queue.task_done()

    def _write(self, batch: list[dict]) -> None:
        """One transaction per batch; one per event on a store whose write sessions hold a single write
        (MongoDB without transactions), where a batch would be refused and its events lost."""
        if not getattr(self.store, "transactional", True):
            for event in batch:
                with self.store.session(write=True) as session:
                    self._write_one(session, event)
            return
        with self.store.session(write=True) as session:
            for event in batch:
                self._write_one(session, event)

    @staticmethod
    def _write_one(session, event: dict) -> None:
        resource = audit_event(event)
        id = new_id()
        recorded = _now()
        resource = {"resourceType": "AuditEvent", "id": id, "meta": {"versionId": "1", "lastUpdated": recorded},
                    **{k: v for k, v in resource.items() if k != "resourceType"}}
        record = StoredResource("AuditEvent", id, 1, recorded, False, fjson.dumps(resource), "POST")
        session.write(record, resource, 0)
