"""Limits that apply with auth on or off, public paths, the request classification, the caller on request.state."""

from __future__ import annotations

import pytest

from fhir_server.security.middleware import classify


def test_over_long_url_is_414_without_auth(client):
    response = client.get("/Patient?name=" + "x" * 9000)
    assert response.status_code == 414
    assert response.json()["resourceType"] == "OperationOutcome"


def test_over_large_headers_are_431_without_auth(client):
    response = client.get("/Patient", headers={f"x-filler-{i}": "y" * 200 for i in range(200)})
    assert response.status_code == 431


def test_auth_off_serves_without_a_token_and_has_no_token_endpoint(client):
    assert client.get("/Patient").status_code == 200
    assert client.get("/.well-known/smart-configuration").status_code == 404


def test_public_paths_need_no_token_with_auth_on(auth_client):
    assert auth_client.get("/metadata").status_code == 200
    assert auth_client.get("/.well-known/smart-configuration").status_code == 200
    assert auth_client.get("/Patient/p1").status_code == 401
    assert auth_client.post("/", json={"resourceType": "Bundle", "type": "batch"}).status_code == 401


def test_unknown_paths_still_need_a_token(auth_client, tokens):
    assert auth_client.get("/NoSuchType/1").status_code == 401
    assert auth_client.get("/NoSuchType/1", headers=tokens.headers("hosp-a")).status_code == 404


def test_the_caller_is_in_the_context_for_every_layer(auth_app, auth_client, tokens, consortium):
    from fhir_server.security import current_caller

    seen = []

    def write_check(session, resource_type, resource, previous):
        seen.append(current_caller())
        return []

    auth_app.state.repository.add_write_check(write_check)
    organization = {"resourceType": "Organization", "id": "org-b", "name": "renamed"}
    assert auth_client.put("/Organization/org-b", json=organization, headers=tokens.headers("hosp-b")).status_code == 200
    assert seen[0].client_id == "hosp-b" and seen[0].organization == "Organization/org-b"
    assert current_caller() is None  # reset after the request


@pytest.mark.parametrize("method, path, expected", [
    ("GET", "/", ("search-system", None, None, "s")),
    ("POST", "/", ("transaction", None, None, None)),
    ("GET", "/_history", ("history-system", None, None, "s")),
    ("GET", "/Patient", ("search-type", "Patient", None, "s")),
    ("POST", "/Patient", ("create", "Patient", None, "c")),
    ("PUT", "/Patient", ("update", "Patient", None, "u")),
    ("DELETE", "/Patient", ("delete", "Patient", None, "d")),
    ("POST", "/Patient/_search", ("search-type", "Patient", None, "s")),
    ("GET", "/Patient/_history", ("history-type", "Patient", None, "s")),
    ("GET", "/Patient/1", ("read", "Patient", "1", "r")),
    ("HEAD", "/Patient/1", ("read", "Patient", "1", "r")),
    ("OPTIONS", "/Patient/1", ("unknown", "Patient", "1", None)),
    ("GET", "/Patient/$meta", ("operation", "Patient", None, "s")),
    ("GET", "/Patient/_other", ("read", "Patient", "_other", "r")),  # not an id, but no other shape either
    ("GET", "/$export/x", ("operation", None, None, "s")),
    ("PATCH", "/Patient/1", ("patch", "Patient", "1", "u")),
    ("GET", "/Patient/1/_history", ("history-instance", "Patient", "1", "r")),
    ("GET", "/Patient/1/_history/2", ("vread", "Patient", "1", "r")),
    ("GET", "/Patient/1/Condition", ("search-type", "Condition", None, "s")),
    ("GET", "", ("search-system", None, None, "s")),
    ("POST", "//", ("transaction", None, None, None)),
    ("GET", "//Patient//1/", ("read", "Patient", "1", "r")),  # empty segments do not count
    ("DELETE", "/Patient/1/", ("delete", "Patient", "1", "d")),
])
def test_classification(method, path, expected):
    interaction = classify(method, path)
    assert (interaction.name, interaction.resource_type, interaction.id, interaction.letter) == expected


def test_a_form_post_to_the_base_is_a_search():
    form = [(b"content-type", b"application/x-www-form-urlencoded; charset=utf-8")]
    assert classify("POST", "/", form).name == "search-system"
    assert classify("POST", "/", [(b"content-type", b"application/fhir+json")]).name == "transaction"
