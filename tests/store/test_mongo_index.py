"""Every MongoDB query the backend sends is served by a declared index (no collection scans).

A recording wrapper captures each filter and sort the backend sends while it runs CRUD,
history and the search benchmark's query shapes; each one must constrain the leading keys
of an index in mongo_index.INDEXES (a clause on an embedded array: type, ``k`` and a value).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from fhir_server.search.query import Parser
from fhir_server.search.registry import default_registry
from fhir_server.store import StoredResource, open_store
from fhir_server.store.mongo_index import INDEXES, derived_fields, index_fields

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spec"
NATIONAL_ID = "https://fhir.referral.cn/ig/NamingSystem/resident-id"
#: the four query kinds of benchmarks/search.py, and the common ones around them
BENCHMARK_QUERIES = [
    ("Task", [("owner", "Organization/org-1"), ("status", "requested,received")]),
    ("ServiceRequest", [("authored", "ge2024-03-01"), ("authored", "lt2024-03-02")]),
    ("ServiceRequest", [("subject:Patient.identifier", f"{NATIONAL_ID}|620102198001011234")]),
    ("ServiceRequest", [("subject", "Patient/pat-1"), ("_include", "ServiceRequest:subject"),
                        ("_revinclude", "Task:focus")]),
    ("Patient", [("name", "张")]),
    ("Patient", [("identifier", f"{NATIONAL_ID}|620102198001011234")]),
    ("Patient", [("_id", "pat-1")]),
    ("Patient", [("birthdate", "ge1980")]),
    ("Observation", [("value-quantity", "gt5.4|http://unitsofmeasure.org|mg")]),
    ("Observation", [("code-value-quantity", "http://loinc.org|718-7$gt5")]),
    ("Patient", [("_has:ServiceRequest:subject:status", "active")]),
    ("Task", [("_sort", "-_lastUpdated")]),
    ("Task", []),
]


class Recorder:
    """Wraps a pymongo/mongomock Database: records (collection, filter, sort) of every read and update."""

    def __init__(self, db, calls: list):
        self._db, self._calls = db, calls

    def __getitem__(self, name):
        return _Collection(self._db[name], name, self._calls)

    def __getattr__(self, name):
        return getattr(self._db, name)


class _Cursor:
    def __init__(self, cursor, call):
        self._cursor, self._call = cursor, call

    def sort(self, key, direction=1):
        self._call["sort"] = [key] if isinstance(key, str) else [k for k, _ in key]
        self._cursor = self._cursor.sort(key, direction)
        return self

    def __getattr__(self, name):
        attr = getattr(self._cursor, name)
        if name in ("skip", "limit"):
            return lambda *a: (attr(*a), self)[1]
        return attr

    def __iter__(self):
        return iter(self._cursor)


class _Collection:
    def __init__(self, collection, name, calls):
        self._collection, self._name, self._calls = collection, name, calls

    def _record(self, flt, sort=()):
        call = {"collection": self._name, "filter": flt, "sort": list(sort)}
        self._calls.append(call)
        return call

    def find(self, flt=None, *args, **kwargs):
        return _Cursor(self._collection.find(flt, *args, **kwargs), self._record(flt or {}))

    def aggregate(self, stages, *args, **kwargs):
        match = stages[0]["$match"] if stages and "$match" in stages[0] else {}
        sort = next((list(s["$sort"]) for s in stages if "$sort" in s), [])
        self._record(match, sort)
        return self._collection.aggregate(stages, *args, **kwargs)

    def __getattr__(self, name):
        attr = getattr(self._collection, name)
        if name in ("find_one", "count_documents", "replace_one", "update_one", "delete_one", "delete_many",
                    "find_one_and_update"):
            def recorded(flt, *args, **kwargs):
                self._record(flt)
                return attr(flt, *args, **kwargs)
            return recorded
        return attr


def _constrained(flt: dict, prefix: str = "") -> tuple[set[str], list[dict]]:
    """(paths the filter constrains for every match, the ``$or`` groups it also requires)."""
    paths: set[str] = set()
    ors: list[dict] = []
    for key, value in flt.items():
        if key == "$and":
            for part in value:
                sub, sub_ors = _constrained(part, prefix)
                paths |= sub
                ors += sub_ors
        elif key == "$or":
            ors.append({"prefix": prefix, "branches": value})
        elif key == "$nor":
            continue  # a negation narrows nothing an index could use
        elif key.startswith("$"):
            continue
        elif isinstance(value, dict) and "$elemMatch" in value:
            paths.add(prefix + key)
            sub, sub_ors = _constrained(value["$elemMatch"], f"{prefix}{key}.")
            paths |= sub
            ors += sub_ors
        else:
            paths.add(prefix + key)
    return paths, ors


def _prefix_length(spec, paths: set[str], sort: list[str]) -> int:
    n = 0
    for field in spec.fields:
        if field in paths:
            n += 1
        elif field in sort:
            return n + 1
        else:
            break
    return n


def _index_for(collection: str, paths: set[str], sort: list[str], own: set[str]) -> bool:
    """Some declared index constrains its leading keys, including at least one of ``own`` when given."""
    for spec in INDEXES:
        if spec.collection != collection:
            continue
        n = _prefix_length(spec, paths, sort)
        leading = set(spec.fields[:n])
        if not own:
            if n >= 1:
                return True
            continue
        # an index-array clause: the index must reach the parameter key and, when the clause
        # compares a value (code, date, id …), that value too
        values = {f for f in own if "." in f and not f.endswith((".k", ".g"))}
        if leading & {f for f in own if f.endswith(".k")} and (not values or leading & values):
            return True
        if not any(f.endswith(".k") for f in own) and leading & own:
            return True
    return False


def served(collection: str, flt: dict, sort: list[str] = ()) -> bool:
    """True when the query would be answered from a declared index, not a collection scan.

    With positive conditions, one of them (every branch, for an ``$or``) must be served by
    an index on its own fields; without, the outer fields (and sort) must lead an index.
    """
    outer = {k: v for k, v in flt.items() if k != "$and"}
    paths, ors = _constrained(outer)
    if "_id" in paths:
        return True
    conditions = [c for c in flt.get("$and", []) if "$nor" not in c]
    if not conditions and not ors:
        return _index_for(collection, paths, list(sort), set())
    for condition in conditions + [{"$or": group["branches"]} for group in ors]:
        branches = condition["$or"] if set(condition) == {"$or"} else [condition]
        if all(_branch(collection, paths, branch, sort) for branch in branches):
            return True
    return False


def _branch(collection: str, outer: set[str], branch: dict, sort) -> bool:
    own, ors = _constrained(branch)
    if not own and ors:  # an $or nested inside: every one of its branches
        return all(_branch(collection, outer, b, sort) for group in ors for b in group["branches"])
    return _index_for(collection, outer | own, list(sort), own)


def _write(store, resource: dict, version: int = 1) -> None:
    body = json.dumps(resource, ensure_ascii=False).encode()
    record = StoredResource(resource["resourceType"], resource["id"], version, "2026-01-01T00:00:00.000000Z", False,
                            body, "PUT")
    with store.session(write=True) as session:
        session.write(record, resource, version - 1)


@pytest.fixture
def recorded():
    store = open_store(f"mongomock://localhost/test_{uuid.uuid4().hex[:12]}")
    calls: list[dict] = []
    store.db = Recorder(store.db, calls)
    yield store, calls
    store.close()


def test_the_checker_rejects_a_scan():
    assert not served("resources", {"deleted": False, "type": "Patient", "$and": [{"body": "x"}]})
    assert not served("resources", {"deleted": False, "type": "Patient",
                                    "$and": [{"tok": {"$elemMatch": {"t": "x"}}}]})
    assert not served("history", {"lastUpdated": {"$gte": "2026"}})
    assert served("resources", {"type": "Patient", "tok": {"$elemMatch": {"k": 1, "c": "x"}}})


def test_crud_and_history_queries_use_declared_indexes(recorded):
    store, calls = recorded
    patient = json.loads((FIXTURES / "Patient-example.json").read_text())
    _write(store, patient)
    _write(store, patient, 2)
    with store.session() as session:
        session.read("Patient", patient["id"])
        session.vread("Patient", patient["id"], 1)
        session.history()
        session.history("Patient")
        session.history("Patient", patient["id"], since="2026-01-01T00:00:00.000000Z", at_or_before=5)
        session.last_sequence()
    assert calls
    for call in calls:
        assert served(call["collection"], call["filter"], call["sort"]), call


@pytest.mark.parametrize("resource_type, pairs", BENCHMARK_QUERIES,
                         ids=[f"{t}?{'&'.join(f'{k}={v}' for k, v in p)}" for t, p in BENCHMARK_QUERIES])
def test_search_benchmark_queries_use_declared_indexes(recorded, resource_type, pairs):
    store, calls = recorded
    for name in ("Task-example1.json", "ServiceRequest-example.json", "Patient-example.json",
                 "Observation-example.json"):
        resource = json.loads((FIXTURES / name).read_text())
        _write(store, resource)
    query = Parser(default_registry(), base_url="http://example.cn/fhir").parse([resource_type], pairs, strict=True)
    with store.session() as session:
        calls.clear()
        session.search(query)
    assert calls
    for call in calls:
        assert served(call["collection"], call["filter"], call["sort"]), call


def test_index_fields_cover_every_kind_the_queries_use():
    rows = {"string": [(1, "zhang", "Zhang", None)], "token": [(2, "urn:x", "1", None, None)],
            "reference": [(3, "Patient", "p", None, None)], "date": [(4, 0, 10, None)], "number": [(5, 1.5, None)],
            "quantity": [(6, 2.0, "http://unitsofmeasure.org", "mg", "mg", 1)], "uri": [(7, "http://x", None)]}
    fields = {**index_fields(rows), **derived_fields(rows)}
    declared = {f.split(".")[0] for spec in INDEXES if spec.collection == "resources" for f in spec.fields}
    assert {"str", "tok", "ref", "dt", "num", "qty", "uri", "cmp"} <= declared
    assert set(fields) - {"sa", "sd"} <= declared
    assert fields["cmp"] == [{"g": 1, "p": [{"k": 6, "v": 2.0, "s": "http://unitsofmeasure.org", "c": "mg",
                                             "u": "mg"}]}]
    assert fields["sa"]["4"] == 0 and fields["sd"]["4"] == 10 and fields["sa"]["3"] == "Patient/p"
