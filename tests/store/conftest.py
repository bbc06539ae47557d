"""The store contract suite always covers mongomock, even before it joins the global BACKENDS."""

from __future__ import annotations

import pytest

from tests.conftest import BACKENDS, make_store

STORE_BACKENDS = BACKENDS + [b for b in ("mongomock",) if b not in BACKENDS]


@pytest.fixture(params=STORE_BACKENDS)
def backend(request):
    if request.param == "mongodb":
        request.applymarker(pytest.mark.mongodb)
    return request.param


@pytest.fixture
def store(backend, tmp_path):
    store = make_store(backend, tmp_path)
    yield store
    store.close()
