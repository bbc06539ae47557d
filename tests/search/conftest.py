"""A server loaded once per module with the referral search fixture, on every store backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.formats import json as fjson
from fhir_server.store.base import StoredResource
from tests.conftest import BACKENDS, make_store

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "search" / "referral-collection.json"


def referral_resources() -> list[dict]:
    return [e["resource"] for e in json.loads(FIXTURE.read_text("utf-8"))["entry"]]


def load(store, resources: list[dict], last_updated: str = "2024-05-01T00:00:00.000000Z") -> None:
    """Write resources through the Store protocol (search tests need no referral-rule checks on the way in)."""
    with store.session(write=True) as session:
        for resource in resources:
            resource = {**resource, "meta": {**resource.get("meta", {}), "versionId": "1",
                                             "lastUpdated": last_updated}}
            record = StoredResource(resource["resourceType"], resource["id"], 1, last_updated, False,
                                    fjson.dumps(resource), "PUT")
            session.write(record, resource, 0)


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request, tmp_path_factory):
    """(client, resources): a server holding the referral fixture."""
    tmp = tmp_path_factory.mktemp("search")
    store = make_store(request.param, tmp)
    app = create_app(Settings(data_dir=tmp, base_url="http://testserver"), store)
    with TestClient(app) as client:
        resources = referral_resources()
        load(store, resources)
        yield client, resources
    store.close()
