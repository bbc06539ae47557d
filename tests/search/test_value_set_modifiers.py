"""Token ``:in`` / ``:not-in``: membership of a value set the server's terminology can list."""

from __future__ import annotations

import pytest

from fhir_server.search import query as q
from fhir_server.search.registry import default_registry
from fhir_server.terminology import registry as terminology

JSON = {"Content-Type": "application/fhir+json"}
ICD = "https://fhir.referral.cn/ig/CodeSystem/icd-10-cn"
CHRONIC = "https://fhir.referral.cn/ig/ValueSet/chronic-conditions"
GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"


def _condition(client, id, coding):
    body = {"resourceType": "Condition", "id": id, "subject": {"reference": "Patient/p1"}}
    if coding is not None:
        body["code"] = {"coding": [coding]}
    assert client.put(f"/Condition/{id}", json=body, headers=JSON).status_code == 201


def _ids(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {e["resource"]["id"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"}


@pytest.fixture
def conditions(client):
    _condition(client, "htn", {"system": ICD, "code": "I10"})
    _condition(client, "dm", {"system": ICD, "code": "E11.9"})
    _condition(client, "asthma", {"system": ICD, "code": "J45"})
    _condition(client, "other-system", {"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"})
    _condition(client, "no-system", {"code": "J44"})
    _condition(client, "no-code", None)
    return client


def test_in_matches_codes_of_the_value_set(conditions):
    assert _ids(conditions.get(f"/Condition?code:in={CHRONIC}")) == {"htn", "dm", "no-system"}


def test_not_in_matches_the_rest(conditions):
    assert _ids(conditions.get(f"/Condition?code:not-in={CHRONIC}")) == {"asthma", "other-system", "no-code"}


def test_in_combines_with_other_parameters_and_value_sets(conditions, client):
    client.put("/Patient/p1", json={"resourceType": "Patient", "id": "p1", "gender": "female"}, headers=JSON)
    client.put("/Patient/p2", json={"resourceType": "Patient", "id": "p2"}, headers=JSON)
    assert _ids(client.get(f"/Patient?gender:in={GENDER}")) == {"p1"}
    assert _ids(client.get(f"/Patient?gender:not-in={GENDER}")) == {"p2"}
    assert _ids(client.get(f"/Condition?code:in={CHRONIC},{GENDER}&_id=htn,asthma")) == {"htn"}


def test_unknown_value_set_is_400_naming_the_parameter(client):
    response = client.get("/Condition?code:in=http://example.org/ValueSet/nothing")
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["code:in"]


def test_a_value_set_the_server_cannot_list_is_refused(monkeypatch):
    vs = {"url": "http://example.org/ValueSet/snomed", "compose": {"include": [{"system": "http://snomed.info/sct"}]}}
    monkeypatch.setattr(terminology, "ig_terminology", lambda: terminology.Terminology(value_sets=[vs]))
    with pytest.raises(q.InvalidParameter, match="snomed"):
        q.Parser(default_registry()).condition("Condition", "code:in", vs["url"])


def test_in_finds_value_sets_stored_on_the_server(conditions, client):
    local = {"resourceType": "ValueSet", "url": "http://example.org/ValueSet/township-chronic", "version": "2",
             "status": "active", "compose": {"include": [{"system": ICD, "concept": [{"code": "J45"}]}]}}
    assert client.post("/ValueSet", json=local, headers=JSON).status_code == 201
    assert _ids(conditions.get(f"/Condition?code:in={local['url']}")) == {"asthma"}
    assert _ids(conditions.get(f"/Condition?code:in={local['url']}|2")) == {"asthma"}
    assert conditions.get(f"/Condition?code:in={local['url']}|3").status_code == 400


def test_a_value_set_too_large_to_search_is_refused(monkeypatch):
    monkeypatch.setattr(q, "MAX_CODE_SET", 3)
    with pytest.raises(q.InvalidParameter, match="at most 3"):
        q.Parser(default_registry()).condition("Condition", "code:in", CHRONIC)
