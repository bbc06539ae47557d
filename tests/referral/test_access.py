"""The referral workflow over HTTP with authentication on: the token's organisation is the side."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.formats import json as fjson
from fhir_server.security.clients import client_from_json, write_clients
from tests.referral.conftest import created_ids, fixture
from tests.referral.test_workflow import moved
from tests.security.conftest import sign_assertion, token_form

CLIENTS = {"village-his": "Organization/village-a", "county-centre": "Organization/county-hosp"}


@pytest.fixture
def secured(tmp_path, store):
    keys = {name: ECKey.generate_key("P-384", private=True, auto_kid=True) for name in CLIENTS}
    write_clients(tmp_path / "clients.json", {
        name: client_from_json({"client_id": name, "organization": org, "admin": False, "scopes": ["system/*.cruds"],
                                "jwks": {"keys": [keys[name].as_dict(private=False)]}})
        for name, org in CLIENTS.items()})
    settings = Settings(data_dir=tmp_path, base_url="http://testserver", auth_enabled=True,
                        auth_clients_file=str(tmp_path / "clients.json"), auth_token_secret="t" * 40)
    with TestClient(create_app(settings, store)) as client:
        client.app.state.repository.process_bundle(fixture("network.json"))
        headers = {}
        for name in CLIENTS:
            response = client.post("/auth/token", data=token_form(sign_assertion(keys[name], "ES384", name)))
            assert response.status_code == 200, response.text
            headers[name] = {"Authorization": f"Bearer {response.json()['access_token']}",
                             "Content-Type": "application/fhir+json"}
        yield client, headers


def test_sides_follow_the_token(secured):
    client, headers = secured
    village, county = headers["village-his"], headers["county-centre"]
    response = client.post("/", json=fixture("up-referral.json"), headers=village)
    assert response.status_code == 200, response.text
    task_id = created_ids(response)["Task"]
    task = client.get(f"/Task/{task_id}", headers=county).json()

    refused = client.put(f"/Task/{task_id}", json=moved(task, "received"), headers=village)
    assert refused.status_code == 403 and "receiving organisation" in refused.text
    assert client.put(f"/Task/{task_id}", json=moved(task, "received"), headers=county).status_code == 200
    received = client.get(f"/Task/{task_id}", headers=county).json()
    refused = client.put(f"/Task/{task_id}", json=moved(received, "cancelled"), headers=county)
    assert refused.status_code == 403 and "referring organisation" in refused.text
    assert client.put(f"/Task/{task_id}", json=moved(received, "cancelled"), headers=village).status_code == 200

    agents = [p["agent"][0]["who"]["reference"] for p in trail(client, f"Task/{task_id}")]
    assert agents == ["Organization/village-a", "Organization/county-hosp", "Organization/village-a"]


def trail(client, ref: str) -> list[dict]:
    """The Provenance of ``ref``, read on the server's own behalf (members cannot read workflow Provenance)."""
    with client.app.state.repository.store.session() as session:
        records, _ = session.history("Provenance", None, None, 1000, 0, None)
    found = [fjson.loads(r.body) for r in records if not r.deleted]
    return sorted((p for p in found if p["target"][0]["reference"].startswith(ref + "/_history/")),
                  key=lambda p: p["target"][0]["reference"])
