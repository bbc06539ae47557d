"""An app with authentication on, registered clients with keys made here, and the consortium fixture.

Client assertions are really signed (ES384/RS384 via joserfc) with keys generated for the
test session; nothing is mocked between the HTTP request and the signature check.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.security.clients import client_from_json, write_clients
from fhir_server.security.tokens import ASSERTION_TYPE

BASE = "http://testserver"
TOKEN_URL = f"{BASE}/auth/token"
FIXTURE = Path(__file__).parent.parent / "fixtures" / "security" / "consortium.json"
FHIR = {"Content-Type": "application/fhir+json"}

#: client id → (organization, admin, scopes)
CLIENTS = {
    "hosp-a": ("Organization/org-a", False, ["system/*.cruds"]),
    "hosp-b": ("Organization/org-b", False, ["system/*.cruds"]),
    "hosp-c": ("Organization/org-c", False, ["system/*.cruds"]),
    "hosp-d": ("Organization/org-d", False, ["system/*.cruds"]),
    "platform": ("Organization/consortium-x", True, ["system/*.cruds"]),
    "reader-a": ("Organization/org-a", False, ["system/ServiceRequest.read", "system/Task.rs"]),
}


@pytest.fixture(scope="session")
def keys():
    """One private key per client (ES384; hosp-b uses RS384 so both algorithms are exercised)."""
    made = {}
    for client_id in CLIENTS:
        if client_id == "hosp-b":
            made[client_id] = (RSAKey.generate_key(2048, private=True, auto_kid=True), "RS384")
        else:
            made[client_id] = (ECKey.generate_key("P-384", private=True, auto_kid=True), "ES384")
    return made


def public_jwks(key) -> dict:
    return {"keys": [key.as_dict(private=False)]}


def sign_assertion(key, alg: str, client_id: str, aud: str = TOKEN_URL, lifetime: int = 240,
                   jti: str | None = None, issuer: str | None = None, now: float | None = None) -> str:
    now = time.time() if now is None else now
    claims = {"iss": issuer or client_id, "sub": client_id, "aud": aud, "exp": int(now + lifetime),
              "jti": jti or uuid.uuid4().hex}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def token_form(assertion: str, scope: str = "system/*.cruds") -> dict:
    return {"grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion}


@pytest.fixture
def auth_settings(tmp_path, keys):
    clients = {}
    for client_id, (organization, admin, scopes) in CLIENTS.items():
        key, _ = keys[client_id]
        clients[client_id] = client_from_json({"client_id": client_id, "organization": organization,
                                               "admin": admin, "scopes": scopes, "jwks": public_jwks(key)})
    path = tmp_path / "clients.json"
    write_clients(path, clients)
    return Settings(data_dir=tmp_path, base_url=BASE, auth_enabled=True, auth_clients_file=str(path),
                    auth_token_secret="test-secret-" + uuid.uuid4().hex)


@pytest.fixture
def auth_backend():
    """The store under the secured app; test modules parametrize it to run on several backends."""
    return os.environ.get("FHIR_TEST_AUTH_BACKEND", "sqlite")


@pytest.fixture
def auth_app(auth_settings, tmp_path, auth_backend):
    from tests.conftest import make_store

    return create_app(auth_settings, make_store(auth_backend, tmp_path))


@pytest.fixture
def auth_client(auth_app):
    with TestClient(auth_app) as client:
        yield client


class Tokens:
    """Bearer headers per client, fetched once through the real token endpoint."""

    def __init__(self, client: TestClient, keys):
        self.client, self.keys, self._cache = client, keys, {}

    def headers(self, client_id: str, scope: str | None = None) -> dict:
        scope = scope or " ".join(CLIENTS[client_id][2])
        if (client_id, scope) not in self._cache:
            key, alg = self.keys[client_id]
            response = self.client.post("/auth/token", data=token_form(sign_assertion(key, alg, client_id), scope))
            assert response.status_code == 200, response.text
            self._cache[(client_id, scope)] = {"Authorization": f"Bearer {response.json()['access_token']}", **FHIR}
        return self._cache[(client_id, scope)]


@pytest.fixture
def tokens(auth_client, keys):
    return Tokens(auth_client, keys)


@pytest.fixture
def consortium(auth_client, auth_app):
    """The consortium fixture stored on the server's own behalf (no caller), audit trail drained."""
    bundle = json.loads(FIXTURE.read_text(encoding="utf-8"))
    auth_app.state.repository.process_bundle(bundle, BASE)
    return bundle


def audit_events(app, **params) -> list[dict]:
    """AuditEvents stored so far, read directly from the store (after draining the audit queue)."""
    from fhir_server.formats import json as fjson

    app.state.audit.catch_up()
    with app.state.store.inner.session() as session:
        records, _ = session.history("AuditEvent", None, None, 100000, 0, None)
    events = {}
    for record in records:
        if not record.deleted and record.id not in events:
            events[record.id] = fjson.loads(record.body)
    return list(events.values())


def read_event(path: str) -> dict:
    """The record the middleware hands the audit writer for hosp-a reading ``path`` (``/Type/id``)."""
    _, resource_type, id = path.split("/")
    return {"interaction": "read", "method": "GET", "path": path, "status": 200, "client_id": "hosp-a",
            "organization": "Organization/org-a", "resource_type": resource_type, "id": id}


def audit_count(store, query: str = "") -> int:
    """AuditEvents in ``store``: all of them, or those a search with ``query`` finds."""
    from fhir_server.search import find

    with store.session() as session:
        return len(find(session, "AuditEvent", query)) if query else session.history("AuditEvent", count=1)[1]


def journaled(store) -> int:
    """Audit journal entries not yet indexed."""
    with store.session() as session:
        return session.count_audit_records()
