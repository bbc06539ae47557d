"""``find``: the conditional-interaction lookup (If-None-Exist, conditional update/delete)."""

from __future__ import annotations

import pytest

from fhir_server.errors import FhirError
from fhir_server.search import find
from tests.search.conftest import load, referral_resources


@pytest.fixture
def loaded_store(store):
    load(store, referral_resources())
    return store


def _ids(store, resource_type, query):
    with store.session() as session:
        return sorted(r.id for r in find(session, resource_type, query))


def test_find_by_identifier_and_criteria(loaded_store):
    assert _ids(loaded_store, "Patient", "identifier=http://example.cn/fhir/NamingSystem/national-id|620102198001011234") \
        == ["pat-zhang"]
    assert _ids(loaded_store, "Patient", "?gender=female") == ["pat-erica", "pat-li"]
    assert _ids(loaded_store, "ServiceRequest", "subject:Patient.identifier=620102199002022345&status=active") == ["sr-3"]
    assert _ids(loaded_store, "Patient", "identifier=nobody") == []


def test_find_ignores_paging_and_returns_every_match(loaded_store):
    assert len(_ids(loaded_store, "Task", "_count=1")) == 6


def test_find_rejects_unknown_parameters(loaded_store):
    with loaded_store.session() as session:
        with pytest.raises(FhirError) as info:
            find(session, "Patient", "identifer=123")
    assert info.value.status == 400 and "identifer" in info.value.issues[0]["diagnostics"]


def test_find_skips_deleted(loaded_store):
    from fhir_server.store.base import StoredResource

    with loaded_store.session(write=True) as session:
        session.write(StoredResource("Patient", "pat-li", 2, "2024-06-01T00:00:00Z", True, b"", "DELETE"), None, 1)
    assert _ids(loaded_store, "Patient", "gender=female") == ["pat-erica"]
