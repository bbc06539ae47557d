"""Every referral rule firing and not firing, over HTTP, with the Gansu rule set governing the network."""

from __future__ import annotations

import json

import pytest

from fhir_server.referral.rules import RuleSetError, load_rule_sets
from tests.referral.conftest import FHIR_JSON, clone, fixture, post_bundle

IG = "https://fhir.referral.cn/ig"
JUSTIFICATION = "https://fhir.referral.cn/server/StructureDefinition/referral-justification"


def request(**changes) -> dict:
    resource = clone(fixture("up-referral.json")["entry"][0]["resource"])
    resource.update(changes)
    return resource


def set_ext(resource: dict, url: str, ext: dict | None) -> dict:
    resource["extension"] = [e for e in resource["extension"] if e["url"] != url] + ([ext] if ext else [])
    return resource


def coding_ext(name: str, code: str) -> dict:
    return {"url": f"{IG}/StructureDefinition/referral-{name}",
            "valueCoding": {"system": f"{IG}/CodeSystem/referral-{name}", "code": code}}


def route(resource: dict, direction: str, scope: str, requester: str, performer: str) -> dict:
    set_ext(resource, f"{IG}/StructureDefinition/referral-direction", coding_ext("direction", direction))
    set_ext(resource, f"{IG}/StructureDefinition/referral-scope", coding_ext("scope", scope))
    resource["requester"] = {"reference": f"PractitionerRole/{requester}"}
    resource["performer"] = [{"reference": f"Organization/{performer}"}]
    return resource


def reason(resource: dict, code: str) -> dict:
    resource["reasonCode"] = [{"coding": [{"system": f"{IG}/CodeSystem/icd-10-cn", "code": code}]}]
    return resource


def assessment(role: str, conclusion: str = "necessary") -> dict:
    return {"url": f"{IG}/StructureDefinition/cross-region-assessment", "extension": [
        {"url": "assessor", "valueReference": {"reference": f"PractitionerRole/{role}"}},
        {"url": "date", "valueDateTime": "2026-11-20T08:30:00+08:00"},
        {"url": "conclusion", "valueCodeableConcept": {"coding": [
            {"system": f"{IG}/CodeSystem/assessment-conclusion", "code": conclusion}]}}]}


def submit(client, resource: dict):
    return client.post("/ServiceRequest", json=resource,
                       headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})


def fired(response) -> dict[str, str]:
    """rule id → severity of every rule issue in the response's OperationOutcome."""
    body = response.json()
    issues = body.get("issue", []) if body.get("resourceType") == "OperationOutcome" else []
    return {c["code"]: i["severity"] for i in issues for c in (i.get("details") or {}).get("coding", [])
            if c.get("system", "").startswith(f"{IG}/rules/")}


def test_consent(network):
    client = network
    ok = submit(client, request())
    assert ok.status_code == 201 and "consent-required" not in fired(ok)

    no_consent = set_ext(request(), f"{IG}/StructureDefinition/consent-reference", None)
    no_consent = set_ext(no_consent, "x", None)
    exempt = set_ext(clone(no_consent), f"{IG}/StructureDefinition/consent-exemption", {
        "url": f"{IG}/StructureDefinition/consent-exemption", "extension": [
            {"url": "reason", "valueCodeableConcept": {"coding": [
                {"system": f"{IG}/CodeSystem/consent-exemption-reason", "code": "emergency"}]}},
            {"url": "note", "valueString": "昏迷，家属未到"}]})
    response = submit(client, exempt)
    assert response.status_code == 201, response.text

    # a draft may wait for consent; activating it may not
    draft = submit(client, {**clone(no_consent), "status": "draft"})
    assert draft.status_code == 201, draft.text
    activated = client.put(f"/ServiceRequest/{draft.headers['Location'].split('/')[-3]}",
                           json={**clone(no_consent), "id": draft.headers["Location"].split("/")[-3]},
                           headers=FHIR_JSON)
    assert activated.status_code == 422

    missing = set_ext(request(), f"{IG}/StructureDefinition/consent-reference",
                      {"url": f"{IG}/StructureDefinition/consent-reference", "valueReference": {"reference": "Consent/none"}})
    response = submit(client, missing)
    assert response.status_code == 422 and fired(response) == {"consent-required": "error"}

    revoked = client.get("/Consent/consent-zhang").json()
    revoked.update(id="consent-old", status="inactive")
    assert client.put("/Consent/consent-old", json=revoked, headers=FHIR_JSON).status_code == 201
    stale = set_ext(request(), f"{IG}/StructureDefinition/consent-reference",
                    {"url": f"{IG}/StructureDefinition/consent-reference", "valueReference": {"reference": "Consent/consent-old"}})
    assert fired(submit(client, stale)) == {"consent-required": "error"}


def test_consent_later_in_the_same_transaction(network):
    """Bundle order does not matter: the rule is judged again once every entry is written."""
    bundle = fixture("up-referral.json")
    consent = network.get("/Consent/consent-zhang").json()
    consent.pop("id"), consent.pop("meta")
    bundle["entry"].append({"fullUrl": "urn:uuid:9a1b3c4d-0000-4000-8000-0000000000c0", "resource": consent,
                            "request": {"method": "POST", "url": "Consent"}})
    bundle["entry"][0]["resource"]["extension"][2]["valueReference"]["reference"] = \
        "urn:uuid:9a1b3c4d-0000-4000-8000-0000000000c0"
    assert post_bundle(network, bundle).status_code == 200
    del bundle["entry"][2]
    bundle["entry"][0]["resource"]["extension"][2]["valueReference"]["reference"] = "Consent/not-in-bundle"
    counts = {kind: network.get(f"/{kind}/_history").json().get("total") for kind in ("ServiceRequest", "Task",
                                                                                        "Provenance")}
    response = post_bundle(network, bundle)
    assert response.status_code == 422 and "consent-required" in response.text
    # judged at the end of the transaction, refused as a whole: nothing of it is stored
    assert counts == {kind: network.get(f"/{kind}/_history").json().get("total") for kind in counts}


def test_direction_against_levels(network):
    client = network
    wrong_up = route(request(), "up", "within-consortium", "role-county-attending", "village-a")
    response = submit(client, wrong_up)
    assert response.status_code == 422 and fired(response)["direction-levels"] == "error"

    wrong_down = route(request(), "down", "within-consortium", "role-village", "county-hosp")
    assert fired(submit(client, wrong_down))["direction-levels"] == "error"

    down = route(request(), "down", "within-consortium", "role-county-attending", "township-a")
    response = submit(client, down)
    assert response.status_code == 201 and "direction-levels" not in fired(response)


def test_lateral_needs_a_reason(network):
    client = network
    lateral = route(request(), "lateral", "within-city", "role-county-attending", "other-county")
    response = submit(client, lateral)
    assert response.status_code == 422 and fired(response) == {"lateral-reason": "error"}
    lateral["extension"].append({"url": JUSTIFICATION, "valueString": "本院 MRI 检修，转同级医院检查"})
    assert submit(client, lateral).status_code == 201


def test_consortium_first(network):
    client = network
    # village clinic → provincial hospital, skipping its county lead hospital (Gansu: an error)
    skip = route(request(), "up", "within-province", "role-village", "prov-hosp")
    skip["extension"].append(assessment("role-county-chief"))
    response = submit(client, skip)
    assert response.status_code == 422 and fired(response) == {"consortium-first": "error"}
    # beyond the consortium's capability (lung cancer is on the list) …
    assert submit(client, reason(clone(skip), "C34")).status_code == 201
    # … or justified
    justified = clone(skip)
    justified["extension"].append({"url": JUSTIFICATION, "valueString": "牵头医院已电话联系，无法收治"})
    assert submit(client, justified).status_code == 201
    # to the lead hospital itself: nothing to say
    assert "consortium-first" not in fired(submit(client, request()))


def test_scope_must_match_the_addresses(network):
    narrow = reason(route(request(), "up", "within-consortium", "role-village", "prov-hosp"), "C34")
    narrow["extension"].append(assessment("role-county-chief"))
    response = submit(network, narrow)
    assert response.status_code == 422 and fired(response) == {"scope-declared": "error"}


def test_cross_region_assessment(network):
    client = network
    out = reason(route(request(), "up", "cross-province", "role-village", "sichuan-hosp"), "C34")
    response = submit(client, out)
    assert response.status_code == 422 and fired(response) == {"cross-region-assessment": "error"}
    by_attending = clone(out)
    by_attending["extension"].append(assessment("role-county-attending"))
    response = submit(client, by_attending)
    assert fired(response) == {"cross-region-assessment": "error"}
    assert "associate chief physician" in response.text
    not_necessary = clone(out)
    not_necessary["extension"].append(assessment("role-county-chief", "not-necessary"))
    assert fired(submit(client, not_necessary)) == {"cross-region-assessment": "error"}
    assessed = clone(out)
    assessed["extension"].append(assessment("role-county-chief"))
    assert submit(client, assessed).status_code == 201
    # Gansu also asks for an assessment when the referral leaves the city (cross-pool)
    city = reason(route(request(), "up", "within-province", "role-village", "prov-hosp"), "C34")
    assert fired(submit(client, city)) == {"cross-region-assessment": "error"}


def test_first_contact_list_warns(network):
    client = network
    hypertension = reason(request(), "I10")  # on Gansu's village list
    response = submit(client, hypertension)
    assert response.status_code == 201 and fired(response) == {"first-contact": "warning"}
    # the township list does not bind a village clinic
    assert fired(submit(client, reason(request(), "J44"))) == {}
    stat = reason(request(priority="stat"), "I10")
    assert fired(submit(client, stat)) == {}


def test_improper_admission_is_flagged(network):
    client = network
    admission = {"resourceType": "Encounter", "status": "in-progress",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                 "subject": {"reference": "Patient/zhang-san"}, "serviceProvider": {"reference": "Organization/county-hosp"},
                 "reasonCode": [{"coding": [{"system": f"{IG}/CodeSystem/icd-10-cn", "code": "J00"}]}]}
    response = client.post("/Encounter", json=admission, headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})
    assert response.status_code == 201 and fired(response) == {"improper-admission": "warning"}
    at_base = {**admission, "serviceProvider": {"reference": "Organization/township-a"}}
    assert fired(client.post("/Encounter", json=at_base,
                             headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})) == {}
    emergency = {**admission, "class": {**admission["class"], "code": "EMER"}}
    assert fired(client.post("/Encounter", json=emergency,
                             headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})) == {}


# ---- rule sets as data -------------------------------------------------------------------------


def test_shipped_rule_sets():
    sets = load_rule_sets()
    national, gansu = sets["national"], sets["gansu"]
    assert national.param("longPrescription", "maxWeeks") == 12 and national.param("longPrescription", "minWeeks") == 0
    assert gansu.param("longPrescription", "minWeeks") == 4 and gansu.param("longPrescription", "maxWeeks") == 12
    assert gansu.param("reservedCapacity", "minShare") == 0.2
    assert national.rule("consortium-first").severity == "warning" and gansu.rule("consortium-first").severity == "error"
    assert gansu.rule("consortium-first").message == national.rule("consortium-first").message
    assert {r.id for r in gansu.rules} == {r.id for r in national.rules}
    for rule in national.rules:
        assert rule.message["zh"] and rule.message["en"]


def write(tmp_path, name, document):
    (tmp_path / name).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def test_invalid_rule_sets_are_refused(tmp_path):
    national = json.loads((load_rule_sets.__globals__["RULES_DIR"] / "national.json").read_text(encoding="utf-8"))
    write(tmp_path, "national.json", national)
    write(tmp_path, "bad.json", {"id": "bad", "title": {"zh": "坏", "en": "bad"}, "rules": [
        {"id": "x", "check": "consent", "severity": "fatal-ish", "message": {"zh": "x", "en": "x"}}]})
    with pytest.raises(RuleSetError, match="severity"):
        load_rule_sets([tmp_path])
    write(tmp_path, "bad.json", {"id": "bad", "title": {"zh": "坏", "en": "bad"}, "rules": [
        {"id": "x", "check": "no-such-check", "severity": "error", "message": {"zh": "x", "en": "x"}}]})
    with pytest.raises(RuleSetError, match="unknown check"):
        load_rule_sets([tmp_path])
    write(tmp_path, "bad.json", {"id": "bad", "extends": "nowhere", "title": {"zh": "坏", "en": "bad"}, "rules": []})
    with pytest.raises(RuleSetError, match="unknown"):
        load_rule_sets([tmp_path])
    write(tmp_path, "bad.json", {"id": "bad", "title": {"zh": "坏", "en": "bad"},
                                 "parameters": {"longPrescription": {"maxWeeks": "twelve"}}, "rules": []})
    with pytest.raises(RuleSetError, match="maxWeeks"):
        load_rule_sets([tmp_path])


def test_rule_sets_are_consulted_only_when_a_rule_can_fire(network, monkeypatch):
    from fhir_server.referral.rules import RuleBook, may_fire

    consulted = []
    original = RuleBook.for_organization
    monkeypatch.setattr(RuleBook, "for_organization",
                        lambda self, org: consulted.append(org) or original(self, org))
    lab_order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                 "subject": {"reference": "Patient/pat-zhang"},
                 "requester": {"reference": "PractitionerRole/role-village"},
                 "code": {"coding": [{"system": "http://loinc.org", "code": "57698-3"}]}}
    assert not may_fire("ServiceRequest", lab_order)
    assert submit(network, lab_order).status_code == 201
    assert consulted == []

    draft = request(status="draft")
    assert not may_fire("ServiceRequest", draft)
    referral = route(request(), "up", "within-consortium", "role-village", "county-hosp")
    assert may_fire("ServiceRequest", referral)
    submit(network, referral)
    assert consulted
