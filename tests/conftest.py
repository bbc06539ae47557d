"""Shared fixtures: a store per backend, an app on it, an HTTP client.

Store and API contract tests take ``store``/``client`` and so run on every backend in
``BACKENDS``; a real MongoDB joins when FHIR_TEST_MONGODB_URI is set.
"""

from __future__ import annotations

import os
import uuid
import warnings

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning)

from fastapi.testclient import TestClient  # noqa: E402

from fhir_server.app import create_app  # noqa: E402
from fhir_server.config import Settings  # noqa: E402
from fhir_server.store import open_store  # noqa: E402

BACKENDS = ["sqlite", "mongomock"]
if os.environ.get("FHIR_TEST_MONGODB_URI"):
    BACKENDS.append("mongodb")


def make_store(backend: str, tmp_path):
    if backend == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'fhir.db'}")
    if backend == "mongomock":
        return open_store(f"mongomock://localhost/test_{uuid.uuid4().hex[:12]}")
    if backend == "mongodb":
        # mongodb://host[:port][/anydb][?options] → the same server and options, a fresh database
        uri, _, options = os.environ["FHIR_TEST_MONGODB_URI"].partition("?")
        scheme, _, rest = uri.partition("://")
        url = f"{scheme}://{rest.split('/', 1)[0]}/test_{uuid.uuid4().hex[:12]}"
        return open_store(url + (f"?{options}" if options else ""))
    raise ValueError(backend)


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
