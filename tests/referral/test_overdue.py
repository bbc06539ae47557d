"""Task/$overdue: referrals not answered within the region's response time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.referral.conftest import FHIR_JSON, created_ids, fixture, post_bundle
from tests.referral.test_workflow import advance


def overdue(client, **params) -> list[str]:
    response = client.get("/Task/$overdue", params=params)
    assert response.status_code == 200, response.text
    return [entry["resource"]["id"] for entry in response.json().get("entry", [])]


def test_overdue_worklist(network):
    client = network
    task = created_ids(post_bundle(client, fixture("up-referral.json")))["Task"]  # answer by 2026-11-21T01:00Z
    assert overdue(client, now="2026-11-21T00:00:00Z") == []
    assert overdue(client, now="2026-11-22T00:00:00Z") == [task]
    assert overdue(client, now="2026-11-22T00:00:00Z", owner="Organization/county-hosp") == [task]
    assert overdue(client, now="2026-11-22T00:00:00Z", owner="Organization/village-a") == []
    # received is not an answer yet; accepted is
    assert advance(client, task, "received").status_code == 200
    assert overdue(client, now="2026-11-22T00:00:00Z") == [task]
    assert advance(client, task, "accepted").status_code == 200
    assert overdue(client, now="2026-11-22T00:00:00Z") == []


def test_server_created_task_uses_the_regional_response_time(network):
    client = network
    request = fixture("up-referral.json")["entry"][0]["resource"]
    assert client.post("/ServiceRequest", json=request, headers=FHIR_JSON).status_code == 201
    now = datetime.now(timezone.utc)
    assert overdue(client, now=(now + timedelta(hours=23)).strftime("%Y-%m-%dT%H:%M:%SZ")) == []
    assert len(overdue(client, now=(now + timedelta(hours=25)).strftime("%Y-%m-%dT%H:%M:%SZ"))) == 1  # Gansu: 24 h
    assert client.get("/Task/$overdue", params={"now": "soon"}).status_code == 400
