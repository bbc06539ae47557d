"""A small tiered-care network (Gansu: village clinic, township centre, county lead hospital …) loaded over HTTP."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def network(client):
    response = client.post("/", json=fixture("network.json"), headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    return client


def post_bundle(client, bundle: dict):
    return client.post("/", json=bundle, headers=FHIR_JSON)


def created_ids(response) -> dict[str, str]:
    """resourceType → id of each entry's location in a transaction-response."""
    ids = {}
    for entry in response.json()["entry"]:
        parts = entry["response"]["location"].split("/")
        ids[parts[0]] = parts[1]
    return ids


def clone(value):
    return copy.deepcopy(value)
