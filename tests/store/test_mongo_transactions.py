"""The replica-set path: one client-session transaction per write session, and how failures map.

mongomock has no sessions, so a thin wrapper hands the backend a client whose sessions
record start/commit/abort and whose collections ignore ``session=``. This checks the
control flow (commit on success, abort on failure, retry of an unknown commit result,
write conflicts as VersionConflict / 409); atomicity itself is MongoDB's and runs in the
contract suite whenever FHIR_TEST_MONGODB_URI names a replica set.
"""

from __future__ import annotations

import json
import uuid

import mongomock
import pytest
from pymongo.errors import OperationFailure

from fhir_server.errors import FhirError
from fhir_server.search import find
from fhir_server.store import StoredResource, VersionConflict
from fhir_server.store.mongo import LOCKS, MongoStore


class FakeSession:
    def __init__(self, log: list, commit_errors: list):
        self.log, self.commit_errors = log, commit_errors
        self.in_transaction = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.log.append("end")

    def start_transaction(self, read_concern=None, write_concern=None, read_preference=None):
        self.log.append(("start", read_concern.level, write_concern.document.get("w")))
        self.in_transaction = True

    def commit_transaction(self):
        if self.commit_errors:
            self.log.append("commit-failed")
            raise self.commit_errors.pop(0)
        self.log.append("commit")
        self.in_transaction = False

    def abort_transaction(self):
        self.log.append("abort")
        self.in_transaction = False


class _Collection:
    def __init__(self, collection, faults: dict):
        self._collection, self._faults = collection, faults

    def __getattr__(self, name):
        attr = getattr(self._collection, name)
        if not callable(attr):
            return attr

        def call(*args, session=None, **kwargs):
            fault = self._faults.pop(name, None) if session is not None else None
            if fault is not None:
                raise fault
            return attr(*args, **kwargs)
        return call


class _Database:
    def __init__(self, db, faults):
        self._db, self._faults = db, faults

    def __getitem__(self, name):
        return _Collection(self._db[name], self._faults)

    def __getattr__(self, name):
        return getattr(self._db, name)


class FakeReplicaSetClient:
    def __init__(self):
        self._client = mongomock.MongoClient()
        self.log: list = []
        self.commit_errors: list = []
        self.faults: dict = {}
        self.admin = self

    def command(self, name):
        return {"isWritablePrimary": True, "setName": "rs0"}

    def get_database(self, name, **options):
        return _Database(self._client.get_database(name, **options), self.faults)

    def start_session(self):
        return FakeSession(self.log, self.commit_errors)

    def close(self):
        self._client.close()


def _conflict(label: str = "TransientTransactionError") -> OperationFailure:
    return OperationFailure("WriteConflict", code=112, details={"errorLabels": [label]})


def _record(id: str, version: int = 1) -> StoredResource:
    resource = {"resourceType": "Patient", "id": id}
    return StoredResource("Patient", id, version, "2026-01-01T00:00:00.000000Z", False, json.dumps(resource).encode())


@pytest.fixture
def replica():
    client = FakeReplicaSetClient()
    store = MongoStore(client, f"test_{uuid.uuid4().hex[:12]}")
    yield store, client
    store.close()


def test_a_replica_set_is_detected_and_writes_run_in_a_majority_transaction(replica):
    store, client = replica
    assert store.mode == "transactions"
    with store.session(write=True) as session:
        session.write(_record("a"), {"resourceType": "Patient", "id": "a"}, 0)
    assert client.log == [("start", "snapshot", "majority"), "commit", "end"]
    with store.session() as session:  # reads need no transaction
        assert session.read("Patient", "a").version == 1
    assert client.log == [("start", "snapshot", "majority"), "commit", "end"]


def test_a_failing_write_session_aborts_its_transaction(replica):
    store, client = replica
    with pytest.raises(RuntimeError):
        with store.session(write=True) as session:
            session.write(_record("a"), {"resourceType": "Patient", "id": "a"}, 0)
            raise RuntimeError("midway")
    assert client.log[-2:] == ["abort", "end"] and "commit" not in client.log


def test_a_write_conflict_is_a_version_conflict(replica):
    store, client = replica
    client.faults["insert_one"] = _conflict()
    with pytest.raises(VersionConflict):
        with store.session(write=True) as session:
            session.write(_record("a"), {"resourceType": "Patient", "id": "a"}, 0)
    assert "abort" in client.log


def test_an_unknown_commit_result_is_committed_again(replica):
    store, client = replica
    client.commit_errors.append(_conflict("UnknownTransactionCommitResult"))
    with store.session(write=True) as session:
        session.write(_record("a"), {"resourceType": "Patient", "id": "a"}, 0)
    assert client.log[-3:] == ["commit-failed", "commit", "end"]


def test_a_conflict_at_commit_answers_409(replica):
    store, client = replica
    client.commit_errors.append(_conflict())
    with pytest.raises(FhirError) as caught:
        with store.session(write=True) as session:
            session.write(_record("a"), {"resourceType": "Patient", "id": "a"}, 0)
    assert caught.value.status == 409


def test_the_txn_read_concern_is_configurable():
    client = FakeReplicaSetClient()
    store = MongoStore(client, "test_rc", txn_read_concern="majority")
    with store.session(write=True):
        pass
    assert client.log[0] == ("start", "majority", "majority")


def test_a_conditional_search_locks_its_criterion_inside_the_transaction(replica):
    store, client = replica
    with store.session(write=True) as session:
        assert find(session, "Patient", "identifier=urn:x|1") == []
        ids = sorted(doc["_id"] for doc in store.db[LOCKS].find({}))
        assert len(ids) == 2 and ids[0].startswith("lease:") and ids[1].startswith("txn:")
    # the lease is released after commit; the criterion's lock document stays (until its TTL)
    assert [doc["_id"][:4] for doc in store.db[LOCKS].find({})] == ["txn:"]


def test_a_conflict_on_the_criterion_lock_answers_409(replica):
    store, client = replica
    client.faults["update_one"] = _conflict()
    with pytest.raises(FhirError) as caught:
        with store.session(write=True) as session:
            find(session, "Patient", "identifier=urn:x|1")
    assert caught.value.status == 409
    assert store.db[LOCKS].count_documents({"_id": {"$regex": "^lease:"}}) == 0
