"""rest-hook delivery to a real HTTP receiver on 127.0.0.1: what each subscriber sees, retries, the log."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.repository import now_instant
from fhir_server.store.base import StoredResource
from tests.conftest import wait_for
from tests.referral.conftest import FHIR_JSON, created_ids, fixture, post_bundle

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content"


class Receiver:
    """An HTTP endpoint that records every notification; the first ``fail`` requests on a path get 500."""

    def __init__(self, fail: dict[str, int] | None = None):
        self.fail = dict(fail or {})
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver.lock:
                    failing = receiver.fail.get(self.path, 0) > 0
                    if failing:
                        receiver.fail[self.path] -= 1
                    receiver.calls.append({"path": self.path, "body": json.loads(body) if body else None,
                                           "headers": dict(self.headers), "answered": 500 if failing else 200})
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def on(self, path: str) -> list[dict]:
        with self.lock:
            return [c for c in self.calls if c["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver(fail={"/county": 2})
    yield server
    server.close()


@pytest.fixture
def hooked(tmp_path, store):
    settings = Settings(data_dir=tmp_path, base_url="http://testserver",
                        extra={"subscription_retry_delays": [0.05, 0.1, 0.2]})
    with TestClient(create_app(settings, store)) as client:
        assert post_bundle(client, fixture("network.json")).status_code == 200
        yield client


def subscribe(client, criteria: str, endpoint: str, payload: str | None = None, content: str | None = None,
              header: list[str] | None = None) -> str:
    channel: dict = {"type": "rest-hook", "endpoint": endpoint}
    if payload:
        channel["payload"] = payload
    if content:
        channel["_payload"] = {"extension": [{"url": BACKPORT, "valueCode": content}]}
    if header:
        channel["header"] = header
    response = client.post("/Subscription", json={"resourceType": "Subscription", "status": "requested",
                                                  "reason": "referral worklist", "criteria": criteria,
                                                  "channel": channel}, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_notifications_as_configured(hooked, receiver):
    client = hooked
    county = subscribe(client, "Task?owner=Organization/county-hosp", receiver.url("/county"),
                       header=["Authorization: Bearer county-centre"])
    requests = subscribe(client, "ServiceRequest?status=active", receiver.url("/requests"), "application/fhir+json")
    village = subscribe(client, "Task?owner=Organization/village-a", receiver.url("/village"), "application/fhir+json",
                        "full-resource")
    assert client.get(f"/Subscription/{county}").json()["status"] == "active"

    ids = created_ids(post_bundle(client, fixture("up-referral.json")))
    task = client.get(f"/Task/{ids['Task']}").json()
    task.update(status="received", businessStatus={"coding": [
        {"system": "https://fhir.referral.cn/ig/CodeSystem/referral-business-status", "code": "received"}]})
    assert client.put(f"/Task/{task['id']}", json=task, headers=FHIR_JSON).status_code == 200

    # the county centre: two changes (created, received); each failed twice then arrived (retries with back-off)
    wait_for(lambda: sum(c["answered"] == 200 for c in receiver.on("/county")) == 2)
    county_calls = receiver.on("/county")
    assert [c["answered"] for c in county_calls].count(500) == 2
    assert all(c["body"] is None for c in county_calls)  # no payload configured: notification only
    assert all(c["headers"].get("Authorization") == "Bearer county-centre" for c in county_calls)

    # the request subscriber: id-only — the reference, never the resource
    wait_for(lambda: len(receiver.on("/requests")) == 1)
    bundle = receiver.on("/requests")[0]["body"]
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "history"
    entry = bundle["entry"][0]
    assert entry["fullUrl"] == f"http://testserver/ServiceRequest/{ids['ServiceRequest']}"
    assert "resource" not in entry

    # the village clinic is not the owner of the up-referral: nothing yet; the down-referral reaches it in full
    assert receiver.on("/village") == []
    down = created_ids(post_bundle(client, fixture("down-referral.json")))
    wait_for(lambda: len(receiver.on("/village")) == 1)
    delivered = receiver.on("/village")[0]["body"]["entry"][0]["resource"]
    assert delivered["id"] == down["Task"] and delivered["owner"]["reference"] == "Organization/village-a"
    wait_for(lambda: len(receiver.on("/requests")) == 2)

    # the delivery log: every attempt, failures included
    log = client.get(f"/Subscription/{county}/$delivery-log").json()
    outcomes = sorted(e["resource"]["outcome"] for e in log["entry"])
    assert outcomes == ["0", "0", "4", "4"]
    assert client.get(f"/Subscription/{village}/$delivery-log").json()["total"] == 1
    assert client.get(f"/Subscription/{requests}/$delivery-log").json()["total"] == 2


def test_subscription_in_error_after_every_retry_failed(hooked, receiver):
    client = hooked
    receiver.fail["/down"] = 100
    subscription = subscribe(client, "Task?owner=Organization/county-hosp", receiver.url("/down"))
    post_bundle(client, fixture("up-referral.json"))
    wait_for(lambda: client.get(f"/Subscription/{subscription}").json()["status"] == "error")
    assert len(receiver.on("/down")) == 4  # the first attempt and three retries
    stored = client.get(f"/Subscription/{subscription}").json()
    assert "4 attempts" in stored["error"]
    outcomes = [e["resource"]["outcome"] for e in
                client.get(f"/Subscription/{subscription}/$delivery-log").json()["entry"]]
    assert sorted(outcomes) == ["4", "4", "4", "8"]


def test_invalid_subscriptions_are_refused(hooked):
    client = hooked
    for channel, criteria in [({"type": "websocket"}, "Task?"), ({"type": "rest-hook", "endpoint": "ftp://x"}, "Task?"),
                              ({"type": "rest-hook", "endpoint": "http://127.0.0.1:9/x"}, "Nothing?x=1"),
                              ({"type": "rest-hook", "endpoint": "http://127.0.0.1:9/x"}, "Task?no-such-param=1")]:
        response = client.post("/Subscription", json={"resourceType": "Subscription", "status": "requested",
                                                      "reason": "r", "criteria": criteria, "channel": channel},
                               headers=FHIR_JSON)
        assert response.status_code == 422, (channel, criteria, response.text)


def test_full_resource_only_for_subscribers_who_may_read_it(tmp_path, backend, store, receiver):
    """With access control on, an organisation that subscribed hears only of resources it may read: another
    organisation's Task matching its criteria sends it nothing, not even the Task's id."""
    from fhir_server.security.clients import write_clients
    from fhir_server.security.context import Caller, acting_as
    from fhir_server.security.scopes import Permissions
    from fhir_server.subscriptions.delivery import SUBSCRIBER

    everything = Permissions.of(["system/*.cruds"])

    write_clients(tmp_path / "clients.json", {})
    settings = Settings(data_dir=tmp_path, base_url="http://testserver", auth_enabled=True,
                        auth_clients_file=str(tmp_path / "clients.json"), auth_token_secret="s" * 32,
                        extra={"subscription_retry_delays": [0.05]})
    with TestClient(create_app(settings, store)) as client:
        repository = client.app.state.repository
        repository.process_bundle(fixture("network.json"))

        def subscription(path: str, claimed: str) -> dict:
            channel = {"type": "rest-hook", "endpoint": receiver.url(path), "payload": "application/fhir+json",
                       "_payload": {"extension": [{"url": BACKPORT, "valueCode": "full-resource"}]}}
            return {"resourceType": "Subscription", "status": "requested", "reason": "r",
                    "criteria": "Task?owner=Organization/county-hosp", "channel": channel,
                    "extension": [{"url": SUBSCRIBER, "valueString": claimed}]}  # a claim the server ignores

        with acting_as(Caller("county", "Organization/county-hosp", permissions=everything)):
            county = repository.create(subscription("/county", "*")).record.id
        with acting_as(Caller("sichuan", "Organization/sichuan-hosp", permissions=everything)):
            outsider = repository.create(subscription("/outsider", "*")).record.id
        stored = repository.read("Subscription", outsider)
        assert b"Organization/sichuan-hosp" in stored.body and b'"*"' not in stored.body
        assert county != outsider

        repository.process_bundle(fixture("up-referral.json"))
        wait_for(lambda: receiver.on("/county"))
        assert receiver.on("/county")[0]["body"]["entry"][0]["resource"]["owner"]["reference"] == \
            "Organization/county-hosp"
        time.sleep(1.0)  # deliveries run in order on one thread: the outsider's would have followed at once
        assert receiver.on("/outsider") == []


def test_writes_no_subscription_watches_wake_no_worker(hooked, receiver, monkeypatch):
    from fhir_server.subscriptions import delivery

    client = hooked

    pushed = []
    original = delivery.Notifier._push
    monkeypatch.setattr(delivery.Notifier, "_push", lambda self, job: (pushed.append(job), original(self, job)))
    patient = {"resourceType": "Patient", "name": [{"family": "王"}]}
    assert client.post("/Patient", json=patient, headers=FHIR_JSON).status_code == 201
    assert pushed == []  # no active Subscription: nothing queued
    subscribe(client, "Patient?family=王", receiver.url("/patients"))
    assert client.post("/Patient", json=patient, headers=FHIR_JSON).status_code == 201
    wait_for(lambda: len(receiver.on("/patients")) == 1)  # seen at once by the process that stored it
    pushed.clear()
    assert client.post("/Organization", json={"resourceType": "Organization", "name": "x"},
                       headers=FHIR_JSON).status_code == 201
    assert pushed == []  # a type no criteria names


def test_a_subscription_stored_by_another_process_is_seen_within_the_watch_window(hooked, receiver):
    from fhir_server.subscriptions import delivery

    client = hooked
    assert client.post("/Patient", json={"resourceType": "Patient"}, headers=FHIR_JSON).status_code == 201
    subscription = {"resourceType": "Subscription", "status": "active", "reason": "r", "criteria": "Patient?",
                    "channel": {"type": "rest-hook", "endpoint": receiver.url("/other")}}
    raw_store = client.app.state.repository.store._store  # beneath the commit listeners, as another process
    stamped = {**subscription, "id": "elsewhere", "meta": {"versionId": "1", "lastUpdated": now_instant()}}
    record = StoredResource("Subscription", "elsewhere", 1, stamped["meta"]["lastUpdated"], False,
                            json.dumps(stamped).encode(), "POST")
    with raw_store.session(write=True) as session:
        session.write(record, stamped, 0)
    time.sleep(delivery.WATCH_SECONDS + 0.1)
    assert client.post("/Patient", json={"resourceType": "Patient"}, headers=FHIR_JSON).status_code == 201
    wait_for(lambda: len(receiver.on("/other")) == 1)
