"""MongoDB-specific behaviour: URLs and start-up, deployment modes, leases, operator injection.

Runs on mongomock; the contract itself is in test_contract.py (every backend).
"""

from __future__ import annotations

import json
import re
import uuid

import mongomock
import pytest

from fhir_server.errors import FhirError
from fhir_server.search import find
from fhir_server.search.query import Parser
from fhir_server.search.registry import default_registry
from fhir_server.store import StoredResource, VersionConflict, open_store
from fhir_server.store import mongo
from fhir_server.store.mongo import MongoStore, StoreUnavailable, redact
from fhir_server.store.mongo_search import Compiler


def _record(resource: dict, version: int = 1) -> StoredResource:
    body = json.dumps(resource, ensure_ascii=False).encode()
    return StoredResource(resource["resourceType"], resource["id"], version, f"2026-01-01T00:00:0{version}.000000Z",
                          False, body, "PUT")


def _put(store, resource: dict, version: int = 1) -> None:
    with store.session(write=True) as session:
        session.write(_record(resource, version), resource, version - 1)


@pytest.fixture
def mock_store():
    store = open_store(f"mongomock://localhost/test_{uuid.uuid4().hex[:12]}")
    yield store
    store.close()


@pytest.fixture
def standalone():
    """A MongoStore behaving as on a standalone server (no transactions), on mongomock."""
    store = MongoStore(mongomock.MongoClient(), f"test_{uuid.uuid4().hex[:12]}", mode="single")
    yield store
    store.close()


# -- URLs and start-up -----------------------------------------------------------------------------

def test_credentials_are_redacted():
    assert redact("mongodb://alice:s3cret@db1:27017,db2:27017/fhir?replicaSet=rs0") == \
        "mongodb://***@db1:27017,db2:27017/fhir?replicaSet=rs0"
    assert redact("mongodb+srv://bob:pw@cluster.example.cn/fhir") == "mongodb+srv://***@cluster.example.cn/fhir"
    assert redact("mongodb://db1/fhir") == "mongodb://db1/fhir"


def test_own_url_options_are_not_passed_to_the_driver():
    driver_url, database, own = mongo._split_url(
        "mongodb://db1,db2/referral?replicaSet=rs0&fhirTxnReadConcern=majority&fhirTransactions=off")
    assert driver_url == "mongodb://db1,db2/referral?replicaSet=rs0"
    assert database == "referral"
    assert own["fhirTxnReadConcern"] == "majority" and own["fhirTransactions"] == "off"
    assert mongo._split_url("mongodb://db1")[1] == "fhir"


def test_unreachable_server_fails_fast_with_the_redacted_url():
    with pytest.raises(StoreUnavailable) as caught:
        open_store("mongodb://alice:s3cret@127.0.0.1:9/fhir?serverSelectionTimeoutMS=200")
    message = str(caught.value)
    assert "mongodb://***@127.0.0.1:9/fhir" in message and "unreachable" in message
    assert "s3cret" not in message


def test_a_server_refusing_the_credentials_is_reported_as_such(monkeypatch):
    import pymongo
    from pymongo.errors import OperationFailure

    class RefusingClient:
        def __init__(self, url, **kwargs):
            self.admin = self

        def command(self, name):
            raise OperationFailure("Authentication failed.", code=18)

    monkeypatch.setattr(pymongo, "MongoClient", RefusingClient)
    with pytest.raises(StoreUnavailable) as caught:
        open_store("mongodb://alice:wrong@db1/fhir")
    assert str(caught.value) == "MongoDB at mongodb://***@db1/fhir refused the connection: Authentication failed."


def test_serve_stops_with_one_clear_line_when_mongodb_is_unreachable(caplog, tmp_path):
    from fhir_server.cli import main

    url = "mongodb://alice:s3cret@127.0.0.1:9/referral?serverSelectionTimeoutMS=200"
    assert main(["serve", "--store", url, "--data-dir", str(tmp_path), "--port", "9"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith("MongoDB at mongodb://***@127.0.0.1:9/referral")
    assert "s3cret" not in caplog.text


class _Admin:
    def __init__(self, reply):
        self.reply = reply

    def command(self, name):
        return self.reply


class _Client:
    def __init__(self, reply):
        self.admin = _Admin(reply)


@pytest.mark.parametrize("reply, expected", [
    ({"isWritablePrimary": True, "setName": "rs0"}, True),
    ({"isWritablePrimary": True, "msg": "isdbgrid"}, True),
    ({"isWritablePrimary": True}, False),
])
def test_transactions_are_detected_from_hello(reply, expected):
    store = MongoStore.__new__(MongoStore)
    store.client = _Client(reply)
    assert store._has_transactions() is expected


def test_declared_indexes_exist_and_opening_again_keeps_them(mock_store):
    from fhir_server.store.mongo_index import INDEXES, ensure_indexes

    ensure_indexes(mock_store.db)  # idempotent: a second start-up changes nothing
    for spec in INDEXES:
        info = mock_store.db[spec.collection].index_information()
        assert spec.name in info, spec.name
        assert [tuple(k) for k in info[spec.name]["key"]] == list(spec.keys)


def test_an_index_whose_definition_changed_is_rebuilt(mock_store):
    from fhir_server.store.mongo_index import ensure_indexes

    resources = mock_store.db["resources"]
    resources.drop_index("token_value")
    resources.create_index([("type", 1), ("tok.k", 1)], name="token_value")  # an older release's definition
    ensure_indexes(mock_store.db)
    keys = [k for k, _ in resources.index_information()["token_value"]["key"]]
    assert keys == ["type", "tok.k", "tok.c", "tok.s"]


# -- standalone servers ----------------------------------------------------------------------------

def test_a_standalone_server_is_announced_at_start_up(caplog):
    MongoStore(mongomock.MongoClient(), "test_warn", mode="single", url="mongodb://u:pw@db1/fhir").close()
    assert "standalone server" in caplog.text and "mongodb://***@db1/fhir" in caplog.text


def test_standalone_server_applies_a_single_write(standalone):
    assert not standalone.transactional
    _put(standalone, {"resourceType": "Patient", "id": "a"})
    _put(standalone, {"resourceType": "Patient", "id": "a", "gender": "male"}, 2)
    with standalone.session() as session:
        assert session.read("Patient", "a").version == 2
    with pytest.raises(VersionConflict):
        _put(standalone, {"resourceType": "Patient", "id": "a", "gender": "other"}, 2)


def test_standalone_server_refuses_a_multi_write_transaction_and_keeps_nothing(standalone):
    _put(standalone, {"resourceType": "Patient", "id": "kept"})
    with pytest.raises(FhirError) as caught:
        with standalone.session(write=True) as session:
            first = {"resourceType": "Patient", "id": "kept", "gender": "female"}
            session.write(_record(first, 2), first, 1)
            second = {"resourceType": "Patient", "id": "new"}
            session.write(_record(second), second, 0)
    assert caught.value.status == 400 and "replica set" in str(caught.value)
    with standalone.session() as session:
        assert session.read("Patient", "kept").version == 1
        assert session.read("Patient", "new") is None
        assert session.vread("Patient", "kept", 2) is None
        assert session.history()[1] == 1


def test_conditional_lease_makes_a_second_writer_wait_then_give_up(standalone, monkeypatch):
    monkeypatch.setattr(mongo, "LEASE_WAIT", 0.05)
    standalone.acquire_lease("criterion")
    with pytest.raises(FhirError) as caught:
        standalone.acquire_lease("criterion")
    assert caught.value.status == 409


def test_an_expired_lease_is_taken_over(standalone, monkeypatch):
    monkeypatch.setattr(mongo, "LEASE_SECONDS", -1)  # leases are born expired: their holder "died"
    standalone.acquire_lease("criterion")
    standalone.acquire_lease("criterion")


def test_a_conditional_search_in_a_write_session_holds_its_lease_until_the_end(standalone, monkeypatch):
    monkeypatch.setattr(mongo, "LEASE_WAIT", 0.05)
    with standalone.session(write=True) as session:
        assert find(session, "Patient", "identifier=urn:oid:2.16.156.10011.1.3|1") == []
        assert standalone.db[mongo.LOCKS].count_documents({}) == 1
    assert standalone.db[mongo.LOCKS].count_documents({}) == 0


# -- operator injection ----------------------------------------------------------------------------

HOSTILE = ['$ne', '{"$where": "sleep(1000) || true"}', '$gt', '{"$ne": null}', '.*', '$where', '$regex']


def _parse(resource_type: str, pairs: list[tuple[str, str]]):
    return Parser(default_registry()).parse([resource_type], pairs, strict=True)


def _keys(node, out: set) -> set:
    if isinstance(node, dict):
        for key, value in node.items():
            out.add(key)
            _keys(value, out)
    elif isinstance(node, list):
        for item in node:
            _keys(item, out)
    return out


def _values(node, out: list) -> list:
    if isinstance(node, dict):
        for value in node.values():
            _values(value, out)
    elif isinstance(node, list):
        for item in node:
            _values(item, out)
    else:
        out.append(node)
    return out


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("name", ["name", "name:exact", "name:contains", "identifier", "_id", "family",
                                  "general-practitioner", "telecom:not"])
def test_hostile_values_never_become_operators(mock_store, name, value):
    with mock_store.session() as session:
        compiled = Compiler(session, "").filter(_parse("Patient", [(name, value)]))
        # the same FHIR syntax (separators | , $ and escapes) with harmless text around it
        plain = "".join(ch if ch in "|,$\\" else "a" for ch in value)
        benign = Compiler(session, "").filter(_parse("Patient", [(name, plain)]))
    # the query's shape (every key, operators included) does not depend on the user's text
    assert _keys(compiled, set()) == _keys(benign, set())
    texts = [v for v in _values(compiled, []) if isinstance(v, str)]
    for piece in filter(None, re.split(r"[|,]", value)):  # …and that text is carried as values
        assert any(piece in text.replace("\\", "") for text in texts), piece


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_match_only_as_text(store, value):
    _put(store, {"resourceType": "Patient", "id": "plain", "name": [{"family": "Zhang"}],
                 "identifier": [{"system": "urn:x", "value": "1"}]})
    _put(store, {"resourceType": "Patient", "id": "literal", "name": [{"family": value}],
                 "identifier": [{"system": "urn:x", "value": value}]})
    with store.session() as session:
        for name in ("name", "name:exact", "name:contains", "family"):
            found = session.search(_parse("Patient", [(name, value)]))
            assert [r.id for r in found.matches] == ["literal"], name
        found = session.search(_parse("Patient", [("identifier", f"urn:x|{value}")]))
        assert [r.id for r in found.matches] == ["literal"]
        assert session.search(_parse("Patient", [("_id", value)])).matches == []


def test_leases_make_concurrent_conditional_creates_one_resource_without_transactions(standalone):
    """The standalone path has no store lock: the lease alone serialises the conditional creates."""
    import threading

    from fhir_server.repository import Repository

    repository = Repository(standalone)
    barrier = threading.Barrier(6)
    created: list[bool] = []
    resource = {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "1"}]}

    def create() -> None:
        barrier.wait()
        created.append(repository.create(dict(resource), if_none_exist="identifier=urn:x|1").created)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(created) == [False] * 5 + [True]
    with standalone.session() as session:
        assert session.history("Patient")[1] == 1
    assert standalone.db[mongo.LOCKS].count_documents({}) == 0


def test_the_app_starts_and_serves_on_a_standalone_server(standalone, tmp_path):
    """Start-up seeding writes one resource per session, which a server without transactions accepts."""
    from fastapi.testclient import TestClient

    from fhir_server.app import create_app
    from fhir_server.config import Settings

    app = create_app(Settings(data_dir=tmp_path, base_url="http://testserver"), standalone)
    with TestClient(app) as client:
        assert client.get("/metadata").status_code == 200
        created = client.post("/Patient", json={"resourceType": "Patient", "gender": "female"})
        assert created.status_code == 201
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient"}},
            {"request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient"}}]}
        refused = client.post("/", json=bundle)
        assert refused.status_code == 400 and "replica set" in refused.text
        assert client.get("/Patient").json()["total"] == 1
