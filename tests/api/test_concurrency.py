"""Races that real clients cause, against a real server with two worker processes.

Exactly one resource for parallel conditional creates, exactly one winner for two
writers sending the same If-Match.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.server import running_server

JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("race"), workers=2) as base:
        yield base


def _parallel(count: int, call):
    barrier = threading.Barrier(count)

    def run(i):
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            return call(http, i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_parallel_conditional_creates_make_one_resource(server):
    for round_ in range(3):
        identifier = f"11010519491231002{round_}"
        body = {"resourceType": "Patient",
                "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": identifier}]}
        headers = {**JSON, "If-None-Exist": f"identifier=urn:oid:2.16.156.10011.1.3|{identifier}"}
        responses = _parallel(8, lambda http, i: http.post(f"{server}/Patient", json=body, headers=headers))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 7 + [201], [r.text for r in responses]
        ids = {r.json()["id"] for r in responses}
        assert len(ids) == 1
        found = httpx.get(f"{server}/Patient", params={"identifier": f"urn:oid:2.16.156.10011.1.3|{identifier}"})
        assert found.json()["total"] == 1


def test_if_match_race_has_exactly_one_winner(server):
    httpx.put(f"{server}/Patient/race", json={"resourceType": "Patient", "id": "race"}, headers=JSON)
    for version in range(1, 11):
        def write(http, i):
            body = {"resourceType": "Patient", "id": "race", "gender": "male" if i else "female"}
            return http.put(f"{server}/Patient/race", json=body, headers={**JSON, "If-Match": f'W/"{version}"'})

        statuses = sorted(r.status_code for r in _parallel(2, write))
        assert statuses == [200, 412]
    history = httpx.get(f"{server}/Patient/race/_history").json()
    assert history["total"] == 11
