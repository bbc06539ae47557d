"""The token endpoint and bearer verification, with really signed client assertions."""

from __future__ import annotations

import time

import pytest

from .conftest import TOKEN_URL, audit_events, sign_assertion, token_form


def _post(auth_client, form):
    return auth_client.post("/auth/token", data=form)


@pytest.mark.parametrize("client_id", ["hosp-a", "hosp-b"])  # ES384 and RS384
def test_valid_assertion_gets_a_bearer_token_that_opens_the_api(auth_client, keys, client_id):
    key, alg = keys[client_id]
    response = _post(auth_client, token_form(sign_assertion(key, alg, client_id), "system/Patient.rs"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300 and body["scope"] == "system/Patient.rs"
    assert response.headers["cache-control"] == "no-store"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert auth_client.get("/Patient", headers=headers).status_code == 200
    assert auth_client.get("/Patient").status_code == 401


def test_expired_assertion_is_refused(auth_client, keys):
    key, alg = keys["hosp-a"]
    stale = sign_assertion(key, alg, "hosp-a", now=time.time() - 600)
    response = _post(auth_client, token_form(stale))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_assertion_living_longer_than_five_minutes_is_refused(auth_client, keys):
    key, alg = keys["hosp-a"]
    response = _post(auth_client, token_form(sign_assertion(key, alg, "hosp-a", lifetime=3600)))
    assert response.status_code == 401


def test_assertion_signed_with_another_key_is_refused(auth_client, keys):
    other_key, alg = keys["hosp-c"]  # hosp-c's key, claiming to be hosp-a
    response = _post(auth_client, token_form(sign_assertion(other_key, alg, "hosp-a")))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_assertion_for_another_audience_is_refused(auth_client, keys):
    key, alg = keys["hosp-a"]
    response = _post(auth_client, token_form(sign_assertion(key, alg, "hosp-a", aud="https://elsewhere/token")))
    assert response.status_code == 401
    assert "aud" in response.json()["error_description"]


def test_replayed_jti_is_refused(auth_client, keys):
    key, alg = keys["hosp-a"]
    first = _post(auth_client, token_form(sign_assertion(key, alg, "hosp-a", jti="once")))
    assert first.status_code == 200
    again = _post(auth_client, token_form(sign_assertion(key, alg, "hosp-a", jti="once")))
    assert again.status_code == 401 and "already used" in again.json()["error_description"]


def test_unknown_client_and_mismatched_subject_are_refused(auth_client, keys):
    key, alg = keys["hosp-a"]
    assert _post(auth_client, token_form(sign_assertion(key, alg, "nobody"))).status_code == 401
    assert _post(auth_client, token_form(sign_assertion(key, alg, "hosp-c", issuer="hosp-a"))).status_code == 401


def test_alg_none_and_hmac_assertions_are_refused(auth_client, keys):
    import base64
    import json

    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"iss": "hosp-a", "sub": "hosp-a", "aud": TOKEN_URL, "exp": int(time.time()) + 60, "jti": "x1"}
    unsigned = f"{part({'alg': 'none'})}.{part(claims)}."
    assert _post(auth_client, token_form(unsigned)).status_code == 401
    hs = f"{part({'alg': 'HS256'})}.{part(claims)}.c2lnbmF0dXJl"
    assert _post(auth_client, token_form(hs)).status_code == 401


@pytest.mark.parametrize("form_change, status, error", [
    ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ({"client_assertion_type": "urn:other"}, 400, "invalid_request"),
    ({"client_assertion": "not-a-jwt"}, 400, "invalid_request"),
    ({"scope": "system/Patient.read?name=x"}, 400, "invalid_scope"),
    ({"scope": "user/Patient.read"}, 400, "invalid_scope"),
])
def test_malformed_token_requests(auth_client, keys, form_change, status, error):
    key, alg = keys["hosp-a"]
    form = {**token_form(sign_assertion(key, alg, "hosp-a")), **form_change}
    response = _post(auth_client, form)
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_scopes_beyond_the_registration_are_not_granted(auth_client, keys):
    key, alg = keys["reader-a"]
    response = _post(auth_client, token_form(sign_assertion(key, alg, "reader-a"), "system/Patient.read"))
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    partial = _post(auth_client, token_form(sign_assertion(key, alg, "reader-a"),
                                            "system/ServiceRequest.rs system/Task.cud"))
    assert partial.status_code == 200 and partial.json()["scope"] == "system/ServiceRequest.rs"


def test_expired_access_token_is_refused(auth_client, auth_app, tokens):
    headers = tokens.headers("hosp-a")
    assert auth_client.get("/Patient", headers=headers).status_code == 200
    real_clock = auth_app.state.tokens.clock
    auth_app.state.tokens.clock = lambda: real_clock() + 301
    try:
        response = auth_client.get("/Patient", headers=headers)
    finally:
        auth_app.state.tokens.clock = real_clock
    assert response.status_code == 401 and "expired" in response.json()["issue"][0]["diagnostics"]


def test_tampered_and_foreign_tokens_are_refused(auth_client, tokens):
    token = tokens.headers("hosp-a")["Authorization"].split()[1]
    header, claims, signature = token.split(".")
    forged = f"{header}.{claims}.{signature[:-4]}AAAA"
    response = auth_client.get("/Patient", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"
    assert auth_client.get("/Patient", headers={"Authorization": "Basic aGk6aGk="}).status_code == 401


def test_authorization_header_forms(auth_client, tokens):
    """Verified headers are remembered as sent: each spelling of the same token is verified on its own, and
    a header that is not a bearer token answers 401 without ``error="invalid_token"``."""
    token = tokens.headers("hosp-a")["Authorization"].split()[1]
    for value in (f"Bearer {token}", f"bearer {token}", f"BEARER  {token} "):
        for _ in range(2):  # verified, then remembered
            assert auth_client.get("/Patient", headers={"Authorization": value}).status_code == 200, value
    for value in ("Bearer", "Bearer  ", f"Token {token}", token):
        response = auth_client.get("/Patient", headers={"Authorization": value})
        assert response.status_code == 401, value
        assert response.headers["www-authenticate"] == 'Bearer realm="fhir"', value
    response = auth_client.get("/Patient", headers={"Authorization": f"Bearer {token}x"})
    assert response.status_code == 401 and "invalid_token" in response.headers["www-authenticate"]


def test_deregistered_client_loses_access(auth_client, auth_settings, tokens):
    """Within the registry's re-check interval (one second): requests do not stat the file each time."""
    from fhir_server.security.clients import read_clients, write_clients
    from tests.conftest import wait_for

    headers = tokens.headers("hosp-c")
    assert auth_client.get("/Patient", headers=headers).status_code == 200
    clients = read_clients(auth_settings.clients_path)
    del clients["hosp-c"]
    write_clients(auth_settings.clients_path, clients)
    wait_for(lambda: auth_client.get("/Patient", headers=headers).status_code == 401, seconds=3)
    fresh = tokens.keys["hosp-c"]
    response = auth_client.post("/auth/token", data=token_form(sign_assertion(*fresh, "hosp-c")))
    assert response.status_code == 401


def test_smart_configuration_and_capability_statement_advertise_the_token_endpoint(auth_client):
    config = auth_client.get("/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert "client-confidential-asymmetric" in config["capabilities"]
    statement = auth_client.get("/metadata").json()  # public
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert security["extension"][0]["extension"][0]["valueUri"] == TOKEN_URL


def test_token_requests_leave_audit_events(auth_client, auth_app, keys):
    key, alg = keys["hosp-a"]
    _post(auth_client, token_form(sign_assertion(key, alg, "hosp-a")))
    _post(auth_client, token_form(sign_assertion(keys["hosp-c"][0], alg, "hosp-a")))
    logins = [e for e in audit_events(auth_app) if e["type"]["code"] == "110114"]
    assert sorted(e["outcome"] for e in logins) == ["0", "4"]
    assert all(e["agent"][0].get("altId") == "hosp-a" for e in logins if e["outcome"] == "0")


def test_token_endpoint_answers_other_methods_with_405(auth_client):
    response = auth_client.get("/auth/token")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["resourceType"] == "OperationOutcome"
