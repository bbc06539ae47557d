"""A server loaded once per module with the referral search fixture, on every store backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from tests.conftest import BACKENDS, make_store

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "search" / "referral-collection.json"


def referral_resources() -> list[dict]:
    return [e["resource"] for e in json.loads(FIXTURE.read_text("utf-8"))["entry"]]


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request, tmp_path_factory):
    """(client, resources): a server holding the referral fixture, written through the HTTP API."""
    tmp = tmp_path_factory.mktemp("search")
    store = make_store(request.param, tmp)
    app = create_app(Settings(data_dir=tmp, base_url="http://testserver"), store)
    with TestClient(app) as client:
        resources = referral_resources()
        for resource in resources:
            response = client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
            assert response.status_code in (200, 201), response.text
        yield client, resources
    store.close()
