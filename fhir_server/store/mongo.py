"""The MongoDB backend (pymongo): the production store, the same contract as SQLite.

Collections (layout and index list in :mod:`fhir_server.store.mongo_index`, docs/mongodb.md):

- ``resources``: the current version of each resource, ``_id`` ``"Type/id"``, tombstones
  included, with its search-index entries embedded, so one document write is atomic;
- ``history``: every version, ``_id`` ``"Type/id/version"``, with a sequence number ``seq``
  from the ``counters`` collection giving the stable order history pages are pinned to;
- ``locks``: one document per conditional-search criterion touched by a write session, so
  concurrent conditional creates on the same criterion conflict instead of both creating.

How a write session is made all-or-nothing depends on the deployment, detected at start-up
with ``hello``:

- replica set or mongos: one multi-document transaction per write session (write concern
  ``majority``, read concern ``snapshot`` by default: ``?fhirTxnReadConcern=majority``);
- standalone server: no transactions exist, so a write session accepts ONE write (each
  write is atomic per document, the version check is in the update filter); a second write
  is refused with a 400 OperationOutcome and the first is undone;
- mongomock (tests): no sessions at all, so sessions are serialised by a process lock and a
  write session keeps an undo log that is replayed if it fails.

Optimistic concurrency does not depend on the mode: a new version replaces the current
document only with the filter ``{"version": expected}`` (a create is an insert on the unique
``_id``), so of two racing writers exactly one wins and the other gets VersionConflict.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator
from urllib.parse import parse_qsl, urlencode

from fhir_server.errors import FhirError

from .base import StoredResource, VersionConflict
from .mongo_index import INDEX_FIELDS, derived_fields, ensure_indexes, index_fields

RESOURCES, HISTORY, COUNTERS, LOCKS = "resources", "history", "counters", "locks"
AUDIT_JOURNAL = "audit_journal"
#: how long a conditional-write lease lives if its holder dies, and how long a writer waits for one
LEASE_SECONDS = 30
LEASE_WAIT = 10
_CREDENTIALS = re.compile(r"^([a-z+]+://)[^@/]*@", re.IGNORECASE)
#: URL options read by this backend and removed before the URL reaches pymongo
_OWN_OPTIONS = ("fhirTransactions", "fhirTxnReadConcern")
_WRITE_CONFLICT = 112


class StoreUnavailable(RuntimeError):
    """MongoDB cannot be reached at start-up (the message names the URL, credentials redacted)."""


def redact(url: str) -> str:
    """The URL with any ``user:password@`` replaced by ``***@``."""
    return _CREDENTIALS.sub(r"\1***@", url)


def _split_url(url: str) -> tuple[str, str, dict[str, str]]:
    """(URL for the driver without our own options, database name, our options)."""
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    hosts, _, database = rest.partition("/")
    options = dict(parse_qsl(query, keep_blank_values=True))
    own = {k: options.pop(k) for k in _OWN_OPTIONS if k in options}
    driver_url = f"{scheme}://{hosts}/{database}"
    if options:
        driver_url += "?" + urlencode(options)
    return driver_url, database or "fhir", own | {"_driver": options}


def _by_key(key: str) -> dict:
    """The filter for one document by ``_id`` (``Type/id`` or ``Type/id/version``), with the shard key.

    ``type`` and ``id`` are the shard key of both collections (docs/mongodb.md), so every
    by-id read and write names them and is routed to one shard.
    """
    resource_type, id = key.split("/")[:2]
    return {"_id": key, "type": resource_type, "id": id}


def _record(doc: dict) -> StoredResource:
    return StoredResource(doc["type"], doc["id"], doc["version"], doc["lastUpdated"], doc["deleted"],
                          bytes(doc["body"]), doc.get("method", "PUT"))


def _is_conflict(error: Exception) -> bool:
    from pymongo.errors import OperationFailure

    if isinstance(error, OperationFailure):
        return error.code == _WRITE_CONFLICT or error.has_error_label("TransientTransactionError")
    return False


class MongoSession:
    """One unit of work. Every driver call passes ``session=`` (None outside a transaction)."""

    def __init__(self, store: "MongoStore", writable: bool, client_session=None):
        self.store = store
        self.writable = writable
        self.cs = client_session
        self.writes = 0
        #: (collection, _id, previous document or None, version written) per change, for the modes
        #: without transactions
        self.undo: list[tuple[str, str, dict | None, int]] = []
        self.leases: list[str] = []
        #: ("added", ids) or ("removed", documents) per audit journal change, for the modes without transactions
        self.journal_undo: list[tuple[str, list]] = []

    # ---- reads ---------------------------------------------------------------------------

    def read(self, resource_type: str, id: str) -> StoredResource | None:
        doc = self.store.db[RESOURCES].find_one(_by_key(f"{resource_type}/{id}"), {f: 0 for f in INDEX_FIELDS},
                                                session=self.cs)
        return _record(doc) if doc else None

    def vread(self, resource_type: str, id: str, version: int) -> StoredResource | None:
        doc = self.store.db[HISTORY].find_one(_by_key(f"{resource_type}/{id}/{int(version)}"), session=self.cs)
        return _record(doc) if doc else None

    def history(self, resource_type: str | None = None, id: str | None = None, since: str | None = None,
                count: int = 20, offset: int = 0, at_or_before: int | None = None,
                ) -> tuple[list[StoredResource], int]:
        query: dict = {}
        if resource_type:
            query["type"] = str(resource_type)
        if id:
            query["id"] = str(id)
        if since:
            query["lastUpdated"] = {"$gte": str(since)}
        if at_or_before is not None:
            query["seq"] = {"$lte": int(at_or_before)}
        collection = self.store.db[HISTORY]
        if query or self.cs is not None:
            total = collection.count_documents(query, session=self.cs)
        else:  # all of history: the collection's count, without scanning it
            total = collection.estimated_document_count()
        docs = collection.find(query, session=self.cs).sort("seq", -1).skip(int(offset)).limit(int(count))
        return [_record(d) for d in docs], total

    def last_sequence(self) -> int:
        doc = self.store.db[COUNTERS].find_one({"_id": HISTORY}, session=self.cs)
        return int(doc["seq"]) if doc else 0

    def search(self, query):
        from .mongo_search import search

        if self.writable:
            self._lock_criterion(query)
        return search(self, query)

    # ---- the audit journal (ObjectIds give the order) ---------------------------------------

    def append_audit_records(self, records: list[bytes]) -> None:
        if not self.writable:
            raise RuntimeError("write in a read-only session")
        if records:
            result = self.store.db[AUDIT_JOURNAL].insert_many([{"record": r} for r in records], ordered=True,
                                                              session=self.cs)
            if self.cs is None:
                self.journal_undo.append(("added", list(result.inserted_ids)))

    def pending_audit_records(self, limit: int) -> list[tuple[object, bytes]]:
        docs = self.store.db[AUDIT_JOURNAL].find({}, session=self.cs).sort("_id", 1).limit(int(limit))
        return [(doc["_id"], bytes(doc["record"])) for doc in docs]

    def remove_audit_records(self, positions: list) -> None:
        if positions:
            journal, selector = self.store.db[AUDIT_JOURNAL], {"_id": {"$in": list(positions)}}
            if self.cs is None:
                self.journal_undo.append(("removed", list(journal.find(selector))))
            journal.delete_many(selector, session=self.cs)

    def count_audit_records(self) -> int:
        return self.store.db[AUDIT_JOURNAL].count_documents({}, session=self.cs)

    # ---- writes --------------------------------------------------------------------------

    def write(self, record: StoredResource, resource: dict | None, expected_version: int) -> None:
        if not self.writable:
            raise RuntimeError("write in a read-only session")
        store = self.store
        if store.mode == "single" and self.writes:
            raise FhirError(400, "this MongoDB server is a standalone server without transactions: a transaction "
                                 "with more than one write cannot be applied all-or-nothing (run MongoDB as a "
                                 "replica set)", "not-supported")
        key = f"{record.resource_type}/{record.id}"
        resources = store.db[RESOURCES]
        if self.cs is None:  # without a transaction the undo log restores the previous document
            previous = resources.find_one(_by_key(key))
        else:
            previous = self._guarded(lambda: resources.find_one(_by_key(key), {"rid": 1, "deleted": 1},
                                                                session=self.cs))
        seq = store.next_sequence()
        doc = {"_id": key, "type": record.resource_type, "id": record.id, "version": record.version,
               "lastUpdated": record.last_updated, "deleted": record.deleted, "method": record.method,
               "seq": seq, "body": record.body}
        history = {**doc, "_id": f"{key}/{record.version}"}
        # ``rid`` orders search results like SQLite's row id: set when a resource (re)appears, kept on update
        doc["rid"] = previous["rid"] if previous and not previous["deleted"] and "rid" in previous else seq
        if resource is not None and not record.deleted:
            rows = store.extraction().rows(record.resource_type, record.id, resource, record.last_updated)
            doc.update(index_fields(rows))
            doc.update(derived_fields(rows))
        self._guarded(lambda: self._replace(resources, key, doc, expected_version))
        self.undo.append((RESOURCES, key, previous, record.version))
        self._guarded(lambda: store.db[HISTORY].insert_one(history, session=self.cs))
        self.undo.append((HISTORY, history["_id"], None, record.version))
        self.writes += 1

    def create_many(self, prepared: list) -> int:
        """Write new resources from :meth:`MongoStore.prepare_new` one by one, leaving out those stored already
        (looked up first: a failed insert would abort the transaction)."""
        keys = [f"{record.resource_type}/{record.id}" for record, _ in prepared]
        stored = {doc["_id"] for doc in self.store.db[RESOURCES].find({"_id": {"$in": keys}}, {"_id": 1},
                                                                      session=self.cs)}
        written = 0
        for key, (record, resource) in zip(keys, prepared):
            if key not in stored:
                stored.add(key)
                self.write(record, resource, 0)
                written += 1
        return written

    def _replace(self, resources, key: str, doc: dict, expected_version: int) -> None:
        from pymongo.errors import DuplicateKeyError

        if expected_version == 0:
            try:
                resources.insert_one(doc, session=self.cs)
            except DuplicateKeyError:
                raise VersionConflict(key) from None
        else:
            result = resources.replace_one({**_by_key(key), "version": int(expected_version)}, doc,
                                           session=self.cs)
            if result.matched_count != 1:
                raise VersionConflict(key)

    def _guarded(self, action):
        try:
            return action()
        except VersionConflict:
            raise
        except Exception as error:
            if _is_conflict(error):  # another transaction changed the same document first
                raise VersionConflict(str(error)) from None
            raise

    def _lock_criterion(self, query) -> None:
        """Serialise conditional writes on the same criterion, so concurrent If-None-Exist creates make one resource.

        A lease document (unique ``_id`` per criterion, outside any transaction) is taken
        before the search runs and released when the session ends: a second writer waits for
        it, then searches and finds what the first one created. Inside a transaction the
        criterion's lock document is also updated, so a writer whose snapshot predates the
        other's commit gets a write conflict (409) instead of creating a duplicate.
        mongomock sessions are serialised by the store and need neither.
        """
        store = self.store
        if store.mode == "serial":
            return
        lock_id = hashlib.sha256(repr(query).encode()).hexdigest()
        if lock_id not in self.leases:
            store.acquire_lease(lock_id)
            self.leases.append(lock_id)
        if self.cs is not None:
            now = datetime.now(timezone.utc)
            try:
                store.db[LOCKS].update_one({"_id": f"txn:{lock_id}"},
                                           {"$set": {"at": now, "expiresAt": now + timedelta(days=1)}},
                                           upsert=True, session=self.cs)
            except Exception as error:
                if _is_conflict(error):
                    raise _busy() from None
                raise

    def rollback(self) -> None:
        """Undo this session's writes (modes without transactions), newest first."""
        db = self.store.db
        for collection, key, previous, version in reversed(self.undo):
            # only while the document is still the version this session wrote
            mine = {**_by_key(key), "version": version}
            if collection == HISTORY:
                db[HISTORY].delete_one(mine)
            elif previous is None:
                db[RESOURCES].delete_one(mine)
            else:
                db[RESOURCES].replace_one(mine, previous)
        self.undo.clear()
        journal = db[AUDIT_JOURNAL]
        for change, items in reversed(self.journal_undo):
            if change == "added":
                journal.delete_many({"_id": {"$in": items}})
            elif items:
                journal.insert_many(items)
        self.journal_undo.clear()

    def release(self) -> None:
        if self.leases:
            self.store.db[LOCKS].delete_many({"_id": {"$in": [f"lease:{lock}" for lock in self.leases]}})
            self.leases.clear()


def _busy() -> FhirError:
    return FhirError(409, "another request is writing with the same search criteria at the same moment; retry",
                     "conflict")


class MongoStore:
    """MongoDB backend; one client per process (pymongo pools connections and is thread-safe)."""

    def __init__(self, client, database: str, *, mode: str | None = None, txn_read_concern: str = "snapshot",
                 url: str = "", extraction=None):
        from pymongo import WriteConcern
        from pymongo.read_concern import ReadConcern

        self.client = client
        self.url = url
        self.mock = type(client).__module__.startswith("mongomock")
        if mode is None:
            mode = "serial" if self.mock else ("transactions" if self._has_transactions() else "single")
        if mode not in ("transactions", "single", "serial"):
            raise ValueError(f"unknown MongoDB store mode {mode!r}")
        self.mode = mode
        if mode == "single":
            logging.getLogger("fhir_server").warning(
                "MongoDB at %s is a standalone server: each write session may write one resource; transaction "
                "Bundles and writes with side effects (referral workflow provenance) are refused, and audit events "
                "are written one per session — run MongoDB as a replica set (a single-node replica set is enough)",
                redact(url or "?"))
        options = {}
        if not self.mock:
            driver_options = getattr(client, "options", None)
            if driver_options is None or not driver_options.write_concern.document:
                options["write_concern"] = WriteConcern("majority")
            if driver_options is None or driver_options.read_concern.level is None:
                options["read_concern"] = ReadConcern("majority")
        self.db = client.get_database(database, **options)
        self.txn_read_concern = ReadConcern(txn_read_concern)
        self._extraction = extraction
        self._lock = threading.RLock()
        self._local = threading.local()
        ensure_indexes(self.db)

    @property
    def transactional(self) -> bool:
        """Whether a write session may hold several writes (False on a standalone server: one write per session)."""
        return self.mode != "single"

    @classmethod
    def from_url(cls, url: str) -> "MongoStore":
        """Open ``mongodb://…/db``, ``mongodb+srv://…/db`` or (tests) ``mongomock://…/db``; fail fast if unreachable."""
        driver_url, database, own = _split_url(url)
        mode = {"on": "transactions", "off": "single"}.get(own.get("fhirTransactions", "auto"))
        read_concern = own.get("fhirTxnReadConcern", "snapshot")
        if url.startswith("mongomock://"):
            import mongomock

            client = mongomock.MongoClient("mongodb://" + driver_url.split("://", 1)[1])
            return cls(client, database, mode=mode or None, txn_read_concern=read_concern, url=url)
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure, PyMongoError

        kwargs = {"uuidRepresentation": "standard"}
        if "serverSelectionTimeoutMS".lower() not in {k.lower() for k in own["_driver"]}:
            kwargs["serverSelectionTimeoutMS"] = 5000
        try:
            client = MongoClient(driver_url, **kwargs)
            client.admin.command("ping")
        except PyMongoError as error:
            detail = str(error).split(", Timeout:")[0]  # the driver's topology dump adds nothing for an operator
            # a server that answers but refuses (authentication, authorisation) is not "unreachable"
            what = "refused the connection" if isinstance(error, OperationFailure) else "is unreachable"
            raise StoreUnavailable(f"MongoDB at {redact(url)} {what}: {detail}") from None
        return cls(client, database, mode=mode, txn_read_concern=read_concern, url=url)

    def _has_transactions(self) -> bool:
        """Replica-set members and mongos routers run multi-document transactions; standalone servers do not."""
        try:
            hello = self.client.admin.command("hello")
        except Exception:
            hello = self.client.admin.command("isMaster")
        return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"

    def extraction(self):
        if self._extraction is None:
            from fhir_server.search.extract import Extraction
            from fhir_server.search.registry import default_registry

            self._extraction = Extraction(default_registry())
        return self._extraction

    def prepare_new(self, items: list) -> list:
        """New resources (version 1), each (record, resource), for :meth:`MongoSession.create_many`."""
        for record, _ in items:
            if record.version != 1 or record.deleted:
                raise ValueError(f"{record.resource_type}/{record.id}: only new resources are created in bulk")
        return list(items)

    def next_sequence(self) -> int:
        """The next history sequence number, taken outside any transaction.

        A shared counter updated inside transactions would make every pair of concurrent
        write transactions conflict; taken outside, numbers of aborted writes are skipped.
        """
        from pymongo import ReturnDocument

        doc = self.db[COUNTERS].find_one_and_update({"_id": HISTORY}, {"$inc": {"seq": 1}}, upsert=True,
                                                    return_document=ReturnDocument.AFTER)
        return int(doc["seq"])

    def acquire_lease(self, lock_id: str) -> None:
        """Take the lease on one criterion, waiting while another session holds it (409 after LEASE_WAIT)."""
        from pymongo.errors import DuplicateKeyError

        locks = self.db[LOCKS]
        deadline = time.monotonic() + LEASE_WAIT
        delay = 0.002
        while True:
            now = datetime.now(timezone.utc)
            expires = now + timedelta(seconds=LEASE_SECONDS)
            try:
                locks.insert_one({"_id": f"lease:{lock_id}", "expiresAt": expires})
                return
            except DuplicateKeyError:
                # a lease left by a crashed worker is taken over once it has expired
                taken = locks.update_one({"_id": f"lease:{lock_id}", "expiresAt": {"$lt": now}},
                                         {"$set": {"expiresAt": expires}})
                if taken.modified_count == 1:
                    return
            if time.monotonic() > deadline:
                raise _busy()
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    @contextmanager
    def session(self, write: bool = False) -> Iterator[MongoSession]:
        outer = getattr(self._local, "session", None)
        if outer is not None:  # re-entrant: an inner unit of work joins the outer one
            if write and not outer.writable:
                raise RuntimeError("cannot upgrade a read session to a write session")
            yield outer
            return
        if self.mode == "serial":
            with self._lock:
                yield from self._run(MongoSession(self, write))
        elif self.mode == "single" or not write:
            yield from self._run(MongoSession(self, write))
        else:
            yield from self._transaction()

    def _run(self, session: MongoSession) -> Iterator[MongoSession]:
        self._local.session = session
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        finally:
            self._local.session = None
            session.release()

    def _transaction(self) -> Iterator[MongoSession]:
        from pymongo import WriteConcern
        from pymongo.errors import PyMongoError
        from pymongo.read_preferences import ReadPreference

        with self.client.start_session() as client_session:
            client_session.start_transaction(read_concern=self.txn_read_concern,
                                             write_concern=WriteConcern("majority"),
                                             read_preference=ReadPreference.PRIMARY)
            session = MongoSession(self, True, client_session)
            self._local.session = session
            try:
                yield session
            except BaseException:
                if client_session.in_transaction:
                    try:
                        client_session.abort_transaction()
                    except PyMongoError:
                        pass  # the server drops an unfinished transaction anyway; the first error is the one to report
                raise
            else:
                self._commit(client_session)
            finally:
                self._local.session = None
                session.release()

    @staticmethod
    def _commit(client_session) -> None:
        from pymongo.errors import PyMongoError

        for _ in range(3):
            try:
                client_session.commit_transaction()
                return
            except PyMongoError as error:
                if error.has_error_label("UnknownTransactionCommitResult"):
                    continue  # committing again is safe: the server answers with the first outcome
                if error.has_error_label("TransientTransactionError") or _is_conflict(error):
                    raise FhirError(409, "the transaction conflicted with a concurrent write; retry",
                                    "conflict") from None
                raise
        raise FhirError(503, "the transaction's commit could not be confirmed", "transient")

    def close(self) -> None:
        self.client.close()
