"""The test double: mongomock finds documents by ``_id`` through a lookup (tests/conftest.py), with the
same answers its full scan gives."""

from __future__ import annotations

import mongomock
from mongomock.collection import Collection


def _collection():
    collection = mongomock.MongoClient().db.resources
    collection.insert_many([{"_id": "Patient/p1", "type": "Patient", "n": 1},
                            {"_id": "Patient/p2", "type": "Patient", "n": 2},
                            {"_id": 7, "type": "Counter", "n": 3}])
    return collection


def test_the_lookup_is_installed():
    assert Collection._iter_documents.__name__ == "iter_documents"


def test_an_id_filter_applies_every_condition_of_the_filter():
    collection = _collection()
    assert collection.find_one({"_id": "Patient/p1"})["n"] == 1
    assert collection.find_one({"_id": "Patient/p1", "type": "Patient"})["n"] == 1
    assert collection.find_one({"_id": "Patient/p1", "type": "Observation"}) is None
    assert collection.find_one({"_id": "Patient/none"}) is None
    assert collection.count_documents({"_id": "Patient/p2"}) == 1


def test_other_filters_scan_as_before():
    collection = _collection()
    assert [d["n"] for d in collection.find({"_id": {"$in": ["Patient/p1", "Patient/p2"]}})] == [1, 2]
    assert collection.find_one({"_id": 7})["n"] == 3  # not a string: the scan
    assert [d["n"] for d in collection.find({"type": "Patient"})] == [1, 2]


def test_writes_by_id_see_the_same_documents():
    collection = _collection()
    result = collection.replace_one({"_id": "Patient/p1", "n": 1}, {"type": "Patient", "n": 4})
    assert result.matched_count == 1 and collection.find_one({"_id": "Patient/p1"})["n"] == 4
    assert collection.replace_one({"_id": "Patient/p1", "n": 1}, {"n": 5}).matched_count == 0
    collection.delete_one({"_id": "Patient/p2"})
    assert collection.find_one({"_id": "Patient/p2"}) is None
