"""Shared fixtures: a store per backend, an app on it, an HTTP client.

Store and API contract tests take ``store``/``client`` and so run on every backend in
``BACKENDS``; a real MongoDB joins when FHIR_TEST_MONGODB_URI is set.
"""

from __future__ import annotations

import os
import time
import uuid
import warnings

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning)

from fastapi.testclient import TestClient  # noqa: E402

from fhir_server.app import create_app  # noqa: E402
from fhir_server.config import Settings  # noqa: E402
from fhir_server.store import open_store  # noqa: E402

BACKENDS = ["sqlite", "mongomock"]


def _index_mongomock_ids() -> None:
    """Let mongomock find a document by ``_id`` as MongoDB does, through its ``_id`` index.

    mongomock tests every stored document against every filter, so seeding the ~1,400
    conformance resources (a read and a write each) took ~10 s per app on mongomock. A filter
    naming a string ``_id`` now looks that one document up and applies the whole filter to it;
    every other filter scans as before.
    """
    from mongomock.collection import Collection
    from mongomock.filtering import filter_applies

    scan = Collection._iter_documents

    def iter_documents(self, filter):
        key = filter.get("_id") if isinstance(filter, dict) else None
        if not isinstance(key, str):
            return scan(self, filter)
        document = self._store[key] if key in self._store else None
        return iter([document] if document is not None and filter_applies(filter, document) else [])

    Collection._iter_documents = iter_documents


_index_mongomock_ids()
if os.environ.get("FHIR_TEST_MONGODB_URI"):
    BACKENDS.append("mongodb")


def store_url(backend: str, tmp_path) -> str:
    """A fresh store of ``backend``, as a URL (processes of their own open it too, but for mongomock)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fhir.db'}"
    if backend == "mongomock":
        return f"mongomock://localhost/test_{uuid.uuid4().hex[:12]}"
    if backend == "mongodb":
        # mongodb://host[:port][/anydb][?options] → the same server and options, a fresh database
        uri, _, options = os.environ["FHIR_TEST_MONGODB_URI"].partition("?")
        scheme, _, rest = uri.partition("://")
        url = f"{scheme}://{rest.split('/', 1)[0]}/test_{uuid.uuid4().hex[:12]}"
        return url + (f"?{options}" if options else "")
    raise ValueError(backend)


def make_store(backend: str, tmp_path):
    return open_store(store_url(backend, tmp_path))


def pytest_collection_modifyitems(items):
    """Mark every test parametrised on the real MongoDB backend, so ``-m mongodb`` selects them."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "mongodb" in callspec.params.values():
            item.add_marker(pytest.mark.mongodb)


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "mongodb":
        request.applymarker(pytest.mark.mongodb)
    return request.param


@pytest.fixture
def store(backend, tmp_path):
    store = make_store(backend, tmp_path)
    yield store
    store.close()


@pytest.fixture
def settings(tmp_path):
    # the R4 core SearchParameters (1,300 resources) are seeded only where a test asks for them
    return Settings(data_dir=tmp_path, base_url="http://testserver", serve_core_search_parameters=False)


@pytest.fixture
def app(settings, store):
    return create_app(settings, store)


@pytest.fixture
def client(app):
    with TestClient(app) as test_client:
        yield test_client


def wait_for(condition, seconds: float = 15.0) -> None:
    """Poll until ``condition()`` holds (background work: deliveries, checkpoints); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
