"""R4 rest-hook delivery: committed writes are matched against active Subscriptions and POSTed to
their endpoints from a background thread, with retries and back-off and a delivery log.

Writes are never slowed: the commit listener only enqueues. A worker thread matches, delivers,
retries after the configured delays (``Settings.extra["subscription_retry_delays"]``, seconds) and
records every attempt as an ``AuditEvent`` (the delivery log, searchable by
``entity=Subscription/id``); when every retry failed the Subscription goes to ``error``.

Payloads never carry more than asked for, and by default less: no ``channel.payload`` → an empty
POST (R4 "notification only"); a payload mime type → a ``history`` Bundle naming the changed
resource (``id-only``); the resource body itself only when the Subscription asks for
``full-resource`` (backport payload-content extension). With access control on, a subscriber (the
organisation that created the Subscription) is notified only of resources the access policy lets it
read, so no notification tells it that another organisation's resource exists or changed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from fhir_server.errors import FhirError, issue
from fhir_server.formats import json as fjson

from . import criteria as crit

log = logging.getLogger("fhir_server.subscriptions")

PAYLOAD_CONTENT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content"
DEFAULT_RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0)
TIMEOUT_SECONDS = 10.0
IDLE_SECONDS = 5.0
WATCH_SECONDS = 1.0
AUDIT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
              "display": "RESTful Operation"}
AUDIT_SUBTYPE = {"system": "http://hl7.org/fhir/restful-interaction", "code": "notify"}
#: who subscribed (organisation reference, or * for the platform), set by the server from the caller
SUBSCRIBER = "https://fhir.referral.cn/server/StructureDefinition/subscriber"
#: record types never notified about: the delivery log itself
SILENT_TYPES = frozenset({"AuditEvent"})


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    kind: str = field(compare=False)  # "match" (records to look at) or "deliver"
    records: list = field(compare=False, default_factory=list)
    subscription: dict | None = field(compare=False, default=None)
    record: object = field(compare=False, default=None)
    attempt: int = field(compare=False, default=1)


def payload_content(subscription: dict) -> str:
    channel = subscription.get("channel") or {}
    if not channel.get("payload"):
        return "empty"
    for extension in (channel.get("_payload") or {}).get("extension") or []:
        if extension.get("url") == PAYLOAD_CONTENT and extension.get("valueCode") in ("empty", "id-only",
                                                                                      "full-resource"):
            return extension["valueCode"]
    return "id-only"


class Notifier:
    def __init__(self, repository):
        self.repository = repository
        extra = repository.settings.extra or {}
        self.retry_delays: tuple[float, ...] = tuple(extra.get("subscription_retry_delays", DEFAULT_RETRY_DELAYS))
        self.base_url = repository.settings.base_url.rstrip("/")
        #: (subscription, resource) -> may the subscriber hear of this resource?
        self.may_see: Callable[[dict, dict], bool] = self._may_see
        #: the latest attempts, newest last (the durable log is the AuditEvents)
        self.recent: deque = deque(maxlen=1000)
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._closed = False
        self._watched: frozenset[str] | None = None
        self._watched_until = 0.0

    # ---- wired into the repository ------------------------------------------------------------

    def check(self, session, resource_type: str, resource: dict, previous: dict | None) -> list[dict]:
        if resource_type != "Subscription":
            return []
        channel = resource.get("channel") or {}
        if channel.get("type") != "rest-hook":
            return [issue("error", "not-supported", "only rest-hook channels are delivered by this server",
                          ["Subscription.channel.type"])]
        endpoint = channel.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            return [issue("error", "required", "a rest-hook Subscription needs an http(s) channel.endpoint",
                          ["Subscription.channel.endpoint"])]
        payload = channel.get("payload")
        if payload and payload.split(";")[0].strip() not in ("application/fhir+json", "application/json"):
            return [issue("error", "not-supported", f"payload '{payload}' is not supported; use application/fhir+json",
                          ["Subscription.channel.payload"])]
        crit.parse(resource.get("criteria"))
        return []

    def activate(self, session, records: list) -> None:
        """Accept a requested Subscription (``requested`` → ``active``, as R4 says) and record who subscribed:
        the authenticated caller's organisation (``*`` for a platform administrator), never what the client
        claims — full-resource payloads are filtered by what that subscriber may read."""
        if not any(record.resource_type == "Subscription" for record in records):
            return
        from fhir_server.security.context import current_caller

        caller = current_caller()
        subscriber = None if caller is None else ("*" if caller.admin else caller.organization)
        for record in records:
            if record.resource_type != "Subscription" or record.deleted:
                continue
            subscription = fjson.loads(record.body)
            changed = {k: val for k, val in subscription.items() if k != "extension"}
            extensions = [e for e in subscription.get("extension") or [] if e.get("url") != SUBSCRIBER]
            if subscriber is not None:
                extensions.append({"url": SUBSCRIBER, "valueString": subscriber})
            if extensions:
                changed["extension"] = extensions
            if changed.get("status") == "requested":
                changed["status"] = "active"
            if changed != subscription:
                self.repository.update_in(session, "Subscription", record.id, changed)

    def _may_see(self, subscription: dict, resource: dict) -> bool:
        """Without access control everyone sees everything; with it, the recorded subscriber's view."""
        guard = getattr(self.repository.store, "guard", None)
        if guard is None:
            return True
        subscriber = next((e.get("valueString") for e in subscription.get("extension") or []
                           if e.get("url") == SUBSCRIBER), None)
        if subscriber == "*":
            return True
        if not subscriber:
            return False
        from fhir_server.security.context import Caller
        from fhir_server.security.policy import visible_ids

        caller = Caller(f"subscription/{subscription.get('id')}", subscriber)
        with guard.store.session() as session:
            return resource["id"] in visible_ids(guard.policy, session, caller, resource["resourceType"],
                                                 [resource["id"]])

    def on_commit(self, records: list) -> None:
        if getattr(self._local, "silent", False):
            return  # the delivery log and status updates written by this notifier
        if any(r.resource_type == "Subscription" for r in records):
            self._watched_until = 0.0  # a Subscription changed here: look again
        watched = self._watched_types()
        records = [r for r in records if r.resource_type not in SILENT_TYPES
                   and (watched is None or r.resource_type in watched)]
        if records:
            self._push(_Job(time.monotonic(), next(self._seq), "match", records=records))

    def _watched_types(self) -> frozenset[str] | None:
        """The resource types named by active Subscriptions' criteria (None: any type), looked up at
        most every ``WATCH_SECONDS``, so a write no Subscription can match costs no queue and no worker
        wake-up. A Subscription written through this process is seen at once; one written through
        another process sharing the store within ``WATCH_SECONDS``."""
        now = time.monotonic()
        if now < self._watched_until:
            return self._watched
        watched: set[str] | None = set()
        try:
            with self.repository.store.session() as session:
                for subscription in self._active_subscriptions(session):
                    try:
                        watched.add(crit.parse(subscription.get("criteria"))[0])
                    except FhirError:
                        continue
        except Exception:  # noqa: BLE001 - cannot tell: hand every write to the worker, as before
            log.exception("could not list the active Subscriptions")
            watched = None
        self._watched = frozenset(watched) if watched is not None else None
        self._watched_until = now + WATCH_SECONDS
        return self._watched

    def close(self, wait: float = 5.0) -> None:
        """Stop delivering (pending retries are dropped) and wait for the job in progress to end, so the
        store is never closed under the worker."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    # ---- the worker ---------------------------------------------------------------------------------

    def _push(self, job: _Job) -> None:
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._heap, job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="subscription-delivery", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                idle_since = time.monotonic()
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0].due <= now:
                        job = heapq.heappop(self._heap)
                        if job.kind == "match":  # one look at the Subscriptions for every write that is waiting
                            others = [j for j in self._heap if j.kind == "match" and j.due <= now]
                            if others:
                                self._heap = [j for j in self._heap if not (j.kind == "match" and j.due <= now)]
                                heapq.heapify(self._heap)
                                for other in sorted(others):
                                    job.records.extend(other.records)
                        break
                    if not self._heap and now - idle_since > IDLE_SECONDS:
                        self._thread = None
                        return
                    wait = (self._heap[0].due - now) if self._heap else IDLE_SECONDS
                    self._cond.wait(timeout=max(0.01, min(wait, IDLE_SECONDS)))
            try:
                if job.kind == "match":
                    self._match(job.records)
                else:
                    self._deliver(job)
            except Exception:  # the worker must survive anything one job does
                log.exception("subscription job failed")

    def _active_subscriptions(self, session) -> list[dict]:
        from fhir_server.search import find

        found = find(session, "Subscription", "status=active,requested")
        now = datetime.now(timezone.utc).isoformat()
        subscriptions = [fjson.loads(r.body) for r in found]
        return [s for s in subscriptions if not s.get("end") or s["end"] > now]

    def _match(self, records: list) -> None:
        if self._closed:
            return
        with self.repository.store.session() as session:
            subscriptions = self._active_subscriptions(session)
            if not subscriptions:
                return
            for subscription in subscriptions:
                try:
                    resource_type, pairs = crit.parse(subscription.get("criteria"))
                except FhirError:
                    continue
                for record in records:
                    if crit.matches(session, resource_type, pairs, record):
                        self._push(_Job(time.monotonic(), next(self._seq), "deliver", subscription=subscription,
                                        record=record))

    def _notification(self, subscription: dict, record) -> tuple[bytes, dict]:
        channel = subscription.get("channel") or {}
        headers = {}
        for line in channel.get("header") or []:
            name, _, value = str(line).partition(":")
            if name.strip() and value.strip():
                headers[name.strip()] = value.strip()
        content = payload_content(subscription)
        if content == "empty":
            return b"", headers
        headers["Content-Type"] = "application/fhir+json"
        ref = f"{record.resource_type}/{record.id}"
        entry: dict = {"fullUrl": f"{self.base_url}/{ref}" if self.base_url else ref,
                       "request": {"method": "POST" if record.version == 1 else "PUT", "url": ref},
                       "response": {"status": "201" if record.version == 1 else "200",
                                    "etag": f'W/"{record.version}"', "lastModified": record.last_updated}}
        if content == "full-resource":  # _deliver sends only what the subscriber may read
            entry["resource"] = fjson.loads(record.body)
        bundle = {"resourceType": "Bundle", "type": "history", "timestamp": record.last_updated,
                  "meta": {"tag": [{"system": "http://hl7.org/fhir/subscription", "code": subscription.get("id", "")}]},
                  "entry": [entry]}
        return fjson.dumps(bundle), headers

    def _deliver(self, job: _Job) -> None:
        subscription, record = job.subscription, job.record
        # a subscriber hears only of resources it may read (checked at each attempt, so a revoked consent
        # stops retries too): even a notification naming one would tell another organisation that it exists
        if not record.deleted and not self.may_see(subscription, fjson.loads(record.body)):
            return
        body, headers = self._notification(subscription, record)
        request = urllib.request.Request(subscription["channel"]["endpoint"], data=body, method="POST",
                                         headers=headers)
        status, error = None, None
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        ok = status is not None and 200 <= status < 300
        final = ok or job.attempt > len(self.retry_delays)
        self.recent.append({"subscription": subscription.get("id"), "resource": f"{record.resource_type}/{record.id}",
                            "version": record.version, "attempt": job.attempt, "status": status, "ok": ok})
        self._log(subscription, record, job.attempt, ok, error or f"HTTP {status}", final)
        if ok:
            return
        if not final:
            delay = self.retry_delays[job.attempt - 1]
            self._push(_Job(time.monotonic() + delay, next(self._seq), "deliver", subscription=subscription,
                            record=record, attempt=job.attempt + 1))
        else:
            self._give_up(subscription, error or f"HTTP {status}")

    def _silently(self, write: Callable[[], object]) -> None:
        if self._closed:
            return
        self._local.silent = True
        try:
            write()
        except Exception:
            log.exception("could not record a subscription delivery")
        finally:
            self._local.silent = False

    def _log(self, subscription: dict, record, attempt: int, ok: bool, outcome: str, final: bool) -> None:
        total = len(self.retry_delays) + 1
        event = {
            "resourceType": "AuditEvent",
            "type": AUDIT_TYPE,
            "subtype": [AUDIT_SUBTYPE],
            "action": "E",
            "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "outcome": "0" if ok else ("8" if final else "4"),
            "outcomeDesc": f"attempt {attempt} of {total}: {'delivered' if ok else outcome}"
                           + ("" if ok or not final else " (giving up)"),
            "agent": [{"requestor": False, "who": {"display": "subscription delivery"},
                       "network": {"address": subscription["channel"]["endpoint"], "type": "5"}}],
            "source": {"observer": {"display": "fhir-server"}},
            "entity": [{"what": {"reference": f"Subscription/{subscription.get('id')}"},
                        "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "13"}},
                       {"what": {"reference": f"{record.resource_type}/{record.id}/_history/{record.version}"},
                        "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4"}}],
        }
        self._silently(lambda: self.repository.create(event))

    def _give_up(self, subscription: dict, error: str) -> None:
        def mark() -> None:
            with self.repository.store.session(write=True) as session:
                current = session.read("Subscription", subscription["id"])
                if current is None or current.deleted:
                    return
                stored = fjson.loads(current.body)
                stored.update(status="error", error=f"delivery failed after {len(self.retry_delays) + 1} attempts: "
                                                    f"{error}")
                self.repository.update_in(session, "Subscription", stored["id"], stored)

        self._silently(mark)
