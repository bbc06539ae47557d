"""Task transitions by role, with the identity the token carries (rules: fhir_server/referral/workflow.py)."""

from __future__ import annotations


def _move(auth_client, tokens, client_id: str, status: str):
    task = auth_client.get("/Task/t1", headers=tokens.headers("platform")).json()
    task["status"] = status
    task.pop("businessStatus", None)
    return auth_client.put("/Task/t1", json=task, headers=tokens.headers(client_id))


def test_only_the_owner_receives_and_only_the_requester_cancels(auth_client, tokens, consortium):
    refused = _move(auth_client, tokens, "hosp-a", "received")  # requester may not act for the owner
    assert refused.status_code in (403, 422), refused.text
    received = _move(auth_client, tokens, "hosp-b", "received")
    assert received.status_code == 200, received.text
    assert _move(auth_client, tokens, "hosp-b", "cancelled").status_code in (403, 422)
    assert _move(auth_client, tokens, "hosp-c", "accepted").status_code == 403  # a reader, not a party
    assert _move(auth_client, tokens, "hosp-d", "accepted").status_code == 404  # hidden
    cancelled = _move(auth_client, tokens, "hosp-a", "cancelled")
    assert cancelled.status_code == 200, cancelled.text


def test_the_workflow_provenance_is_visible_to_the_parties_only(auth_client, tokens, consortium):
    assert _move(auth_client, tokens, "hosp-b", "received").status_code == 200
    mine = auth_client.get("/Provenance?target=Task/t1", headers=tokens.headers("hosp-b")).json()
    assert mine["total"] >= 1
    assert auth_client.get("/Provenance?target=Task/t1", headers=tokens.headers("hosp-d")).json()["total"] == 0
