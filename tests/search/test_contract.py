"""Search contract: the same queries answer the same way on every backend (HTTP API only).

Each case is a query on the referral fixture and the ids it must return (as a set, or as a
list when the order matters). The fixture is tests/fixtures/search/referral-collection.json.
"""

from __future__ import annotations

import pytest

NID = "http://example.cn/fhir/NamingSystem/national-id"
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"

CASES = [
    # --- string: prefix by default, case- and accent-insensitive; :exact, :contains; CJK
    ("Patient?name=zha", {"pat-zhang"}),
    ("Patient?name=ZHANG", {"pat-zhang"}),
    ("Patient?name=erica", {"pat-erica"}),
    ("Patient?name=Érica", {"pat-erica"}),
    ("Patient?name=emile", {"pat-erica"}),
    ("Patient?name=张", {"pat-zhang"}),
    ("Patient?name=张三", {"pat-zhang"}),
    ("Patient?name:exact=Zhang", {"pat-zhang"}),
    ("Patient?name:exact=zhang", set()),
    ("Patient?name:exact=Érica", {"pat-erica"}),
    ("Patient?name:contains=ric", {"pat-erica"}),
    ("Patient?name:contains=AN", {"pat-zhang", "pat-nobirth"}),
    ("Patient?family=li", {"pat-li"}),
    ("Patient?given=si", {"pat-li"}),
    ("Patient?name=nobody", set()),
    ("Patient?address-city=兰州", {"pat-zhang"}),
    ("Organization?name=gansu", set()),
    ("Organization?name=甘肃", {"org-a"}),
    ("Organization?name=clinique elysee", {"org-c"}),
    ("Organization?address-postalcode=7300", {"org-b"}),
    ("Organization?address=lanzhou", {"org-b"}),
    ("Patient?name=li,wang", {"pat-li", "pat-nobirth"}),
    ("Patient?name=zhang&name=san", {"pat-zhang"}),
    ("Patient?name=zhang&name=si", set()),
    # --- token: code, system|code, |code, system|, :not, :text, :of-type, booleans, identifiers
    ("Patient?gender=female", {"pat-li", "pat-erica"}),
    ("Patient?gender=female,unknown", {"pat-li", "pat-erica", "pat-nobirth"}),
    ("Patient?gender:not=female", {"pat-zhang", "pat-nobirth"}),
    ("Patient?gender:not=female&gender:not=male", {"pat-nobirth"}),
    (f"Patient?identifier={NID}|620102198001011234", {"pat-zhang"}),
    ("Patient?identifier=620102198001011234", {"pat-zhang"}),
    ("Patient?identifier=http://wrong|620102198001011234", set()),
    (f"Patient?identifier={NID}|", {"pat-zhang", "pat-li"}),
    ("Patient?identifier=|620102198001011234", set()),
    ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|NI|620102198001011234", {"pat-zhang"}),
    ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|620102198001011234", set()),
    ("Patient?active=true", {"pat-li"}),
    ("Organization?active=false", {"org-c"}),
    ("Patient?deceased=true", {"pat-nobirth"}),
    ("Patient?deceased=false", {"pat-zhang", "pat-li", "pat-erica"}),
    ("Patient?phone=13800000001", {"pat-zhang"}),
    ("Patient?email=zhang@example.cn", {"pat-zhang"}),
    ("Patient?telecom=phone|13800000001", {"pat-zhang"}),
    (f"ServiceRequest?code={SCT}|306206005", {"sr-1", "sr-3", "sr-5"}),
    (f"ServiceRequest?code={SCT}|306206005,{SCT}|183444007", {"sr-1", "sr-2", "sr-3", "sr-4", "sr-5"}),
    ("ServiceRequest?code:text=referral for", {"sr-2", "sr-4"}),
    ("ServiceRequest?category:text=referral", {"sr-1", "sr-2", "sr-3", "sr-4", "sr-5"}),
    ("Observation?code:text=body", {"obs-wt"}),
    ("Observation?code:text=smoking", {"obs-text"}),
    ("ServiceRequest?status=active", {"sr-1", "sr-3"}),
    ("ServiceRequest?status:not=active", {"sr-2", "sr-4", "sr-5"}),
    ("ServiceRequest?priority=urgent,stat", {"sr-2", "sr-5"}),
    ("ServiceRequest?identifier=REF-3", {"sr-3"}),
    ("Task?status=requested,received", {"task-1", "task-3", "task-4", "task-6"}),
    ("Encounter?class=AMB", {"enc-1"}),
    ("Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP", {"enc-2"}),
    ("PractitionerRole?role=doctor", {"role-1"}),
    ("Observation?status=final,amended&code=718-7", {"obs-hb"}),
    # --- :missing
    ("Patient?birthdate:missing=true", {"pat-nobirth"}),
    ("Patient?birthdate:missing=false", {"pat-zhang", "pat-li", "pat-erica"}),
    ("Patient?identifier:missing=true", {"pat-erica", "pat-nobirth"}),
    ("Organization?partof:missing=false", {"org-b"}),
    ("Patient?name:missing=true", set()),
    # --- dates: precision-aware ranges, every prefix
    ("Patient?birthdate=1980", {"pat-zhang"}),
    ("Patient?birthdate=1980-01-01", {"pat-zhang"}),
    ("Patient?birthdate=1990-02", {"pat-li"}),
    ("Patient?birthdate=1990-02-10", set()),
    ("Patient?birthdate=1990", {"pat-li"}),
    ("Patient?birthdate=eq1990", {"pat-li"}),
    ("Patient?birthdate=ne1990", {"pat-zhang", "pat-erica"}),
    ("Patient?birthdate=gt1990-01-31", {"pat-li", "pat-erica"}),
    ("Patient?birthdate=lt1990-02-10", {"pat-zhang", "pat-li"}),
    ("Patient?birthdate=ge1990-02-10", {"pat-erica", "pat-li"}),
    ("Patient?birthdate=le1990-02-10", {"pat-zhang", "pat-li"}),
    ("Patient?birthdate=ge1990-02", {"pat-li", "pat-erica"}),
    ("Patient?birthdate=le1980-01-01", {"pat-zhang"}),
    ("Patient?birthdate=sa1990-01", {"pat-li", "pat-erica"}),
    ("Patient?birthdate=sa1990-02-10", {"pat-erica"}),
    ("Patient?birthdate=eb1990-02-10", {"pat-zhang"}),
    ("Patient?birthdate=eb1990-03", {"pat-zhang", "pat-li"}),
    ("Patient?birthdate=gt1979&birthdate=lt1991", {"pat-zhang", "pat-li"}),
    ("Patient?birthdate=1980,2001", {"pat-zhang", "pat-erica"}),
    ("Patient?birthdate=ap2001-07-14", {"pat-erica"}),
    ("Patient?death-date=2020-01-01", {"pat-nobirth"}),
    ("Patient?death-date=2020-01-01T10:00:00Z", {"pat-nobirth"}),
    ("Patient?death-date=2020-01-01T18:00:00%2B08:00", {"pat-nobirth"}),
    ("Patient?death-date=2020-01-01T10:00:01Z", set()),
    ("ServiceRequest?authored=2024-02", {"sr-2", "sr-3"}),
    ("ServiceRequest?authored=2024-02-20", {"sr-2"}),
    ("ServiceRequest?authored=2024-02-19", set()),
    ("ServiceRequest?authored=ge2024-02-01&authored=lt2024-03-01", {"sr-2", "sr-3"}),
    ("ServiceRequest?authored=lt2024", {"sr-4"}),
    ("ServiceRequest?authored=ge2024-03", {"sr-5"}),
    ("ServiceRequest?authored=gt2024-03-01", {"sr-5"}),
    ("ServiceRequest?authored=sa2024-02-20", {"sr-5"}),
    ("ServiceRequest?occurrence=2024-03-05", set()),
    ("ServiceRequest?occurrence=2024-03", {"sr-1"}),
    ("ServiceRequest?occurrence=ge2024-03-05", {"sr-1"}),
    ("ServiceRequest?occurrence=sa2024-02-28", {"sr-1"}),
    ("ServiceRequest?occurrence=eb2024-03-05", set()),
    ("Encounter?date=2024-01-15", {"enc-1"}),
    ("Encounter?date=2024-01-15T01:30:00Z", set()),
    ("Encounter?date=ge2024-01-15T01:30:00Z", {"enc-1", "enc-2"}),
    ("Encounter?date=gt2030-01-01", {"enc-2"}),
    ("Encounter?date=lt2024-02-01", {"enc-1"}),
    ("Observation?date=2024-02-03", {"obs-wt"}),
    ("Observation?date=2023", {"obs-hb"}),
    ("Observation?date=2023-06-15", set()),
    ("Observation?date=le2023-06-15", {"obs-hb"}),
    ("Task?authored-on=2024-01-10T09:00:00Z", {"task-1"}),
    # --- number and quantity
    ("RiskAssessment?probability=0.25", {"risk-1"}),
    ("RiskAssessment?probability=0.3", {"risk-1"}),  # 0.3 means [0.25, 0.35)
    ("RiskAssessment?probability=0.4", set()),
    ("RiskAssessment?probability=gt0.2", {"risk-1"}),
    ("RiskAssessment?probability=lt0.2", set()),
    ("RiskAssessment?probability=ap0.26", {"risk-1"}),
    ("Observation?value-quantity=72.5", {"obs-wt"}),
    ("Observation?value-quantity=72", set()),
    ("Observation?value-quantity=7e1", {"obs-wt"}),
    ("Observation?value-quantity=gt13", {"obs-wt", "obs-hb"}),
    ("Observation?value-quantity=gt13.5", {"obs-wt"}),
    ("Observation?value-quantity=le13.2", {"obs-hb"}),
    ("Observation?value-quantity=lt72.5", {"obs-hb"}),
    ("Observation?value-quantity=ge72.5", {"obs-wt"}),
    ("Observation?value-quantity=ne72.5", {"obs-hb"}),
    ("Observation?value-quantity=ap70", {"obs-wt"}),
    ("Observation?value-quantity=72.5|http://unitsofmeasure.org|kg", {"obs-wt"}),
    ("Observation?value-quantity=72.5|http://unitsofmeasure.org|g", set()),
    ("Observation?value-quantity=72.5||kg", {"obs-wt"}),
    ("Observation?value-quantity=gt1||g/dL", {"obs-hb"}),
    ("Observation?component-value-quantity=gt140", {"obs-bp"}),
    ("Encounter?length=60", {"enc-1"}),
    ("Encounter?length=gt59||min", {"enc-1"}),
    # --- composite
    (f"Observation?component-code-value-quantity={LOINC}|8480-6$gt140", {"obs-bp"}),
    (f"Observation?component-code-value-quantity={LOINC}|8462-4$gt140", set()),
    ("Observation?component-code-value-quantity=8462-4$lt100", {"obs-bp"}),
    (f"Observation?code-value-quantity={LOINC}|29463-7$72.5", {"obs-wt"}),
    (f"Observation?code-value-quantity={LOINC}|718-7$72.5", set()),
    (f"Observation?code-value-quantity={LOINC}|718-7$gt10,{LOINC}|29463-7$gt100", {"obs-hb"}),
    # --- reference: Type/id, id, :Type, absolute to this server, foreign absolute, :identifier
    ("ServiceRequest?subject=Patient/pat-zhang", {"sr-1", "sr-2"}),
    ("ServiceRequest?subject=pat-li", {"sr-3", "sr-5"}),
    ("ServiceRequest?subject:Patient=pat-li", {"sr-3", "sr-5"}),
    ("ServiceRequest?subject:Group=pat-li", set()),
    ("ServiceRequest?subject=http://testserver/Patient/pat-erica", {"sr-4"}),
    ("ServiceRequest?patient=Patient/pat-erica", {"sr-4"}),
    ("ServiceRequest?subject=Patient/pat-zhang,Patient/pat-erica", {"sr-1", "sr-2", "sr-4"}),
    ("Observation?subject=http://other.example.org/fhir/Patient/pat-zhang", {"obs-text"}),
    ("Observation?subject=Patient/pat-zhang", {"obs-bp", "obs-hb"}),
    ("Task?owner=Organization/org-a&status=requested,received", {"task-1", "task-6"}),
    ("Task?focus=ServiceRequest/sr-1", {"task-1", "task-6"}),
    ("ServiceRequest?performer=Organization/org-b", {"sr-3", "sr-5"}),
    ("ServiceRequest?requester=Organization/org-b&performer=Organization/org-a", {"sr-1", "sr-2"}),
    ("Observation?performer=Practitioner/prac-1", {"obs-hb"}),
    ("Task?requester:identifier=http://example.cn/fhir/NamingSystem/uscc|12620000MB0000002B", {"task-1"}),
    ("Task?requester:identifier=12620000MB0000002B", {"task-1"}),
    # --- the IG's own SearchParameters (profiles/SearchParameter-*.json)
    ("ServiceRequest?direction=up", {"sr-1", "sr-2"}),
    ("ServiceRequest?direction=https://fhir.referral.cn/ig/CodeSystem/referral-direction|down", {"sr-3"}),
    ("ServiceRequest?direction:missing=true", {"sr-4", "sr-5"}),
    ("ServiceRequest?consortium=Organization/org-a", {"sr-1", "sr-2"}),
    ("ServiceRequest?consortium.name=甘肃&direction=up&_sort=-authored", ["sr-2", "sr-1"]),
    # --- uri: exact, :below, :above
    ("ValueSet?url=http://example.cn/fhir/ValueSet/referral-reasons", {"vs-1"}),
    ("ValueSet?url:below=http://example.cn/fhir/ValueSet/referral-reasons", {"vs-1", "vs-2"}),
    ("ValueSet?url:below=http://example.cn/fhir", {"vs-1", "vs-2"}),
    ("ValueSet?url:above=http://example.cn/fhir/ValueSet/referral-reasons/v2/extra", {"vs-1", "vs-2"}),
    ("ValueSet?url:above=http://example.cn/fhir/ValueSet/referral-reasons", {"vs-1"}),
    # --- chains, several levels; reverse chains (_has)
    (f"ServiceRequest?subject:Patient.identifier={NID}|620102198001011234", {"sr-1", "sr-2"}),
    ("ServiceRequest?subject.name=li", {"sr-3", "sr-5"}),
    ("ServiceRequest?subject:Patient.gender=female", {"sr-3", "sr-4", "sr-5"}),
    ("ServiceRequest?subject:Patient.organization.name=lanzhou", {"sr-3", "sr-5"}),
    ("ServiceRequest?subject:Patient.organization:Organization.partof.name=甘肃", {"sr-3", "sr-5"}),
    ("Task?focus:ServiceRequest.subject:Patient.identifier=620102199002022345", {"task-3", "task-5"}),
    ("Task?focus:ServiceRequest.status=active&owner=Organization/org-b", {"task-3"}),
    ("Observation?encounter.status=in-progress", {"obs-wt"}),
    ("PractitionerRole?practitioner.identifier=LIC-1", {"role-1"}),
    ("Patient?_has:ServiceRequest:subject:status=active", {"pat-zhang", "pat-li"}),
    ("Patient?_has:ServiceRequest:subject:status=draft,revoked", {"pat-erica", "pat-li"}),
    ("Patient?_has:Observation:subject:code=718-7", {"pat-zhang"}),
    ("Patient?_has:ServiceRequest:subject:_has:Task:focus:owner=Organization/org-c", {"pat-erica"}),
    ("Organization?_has:Task:owner:status=requested", {"org-a", "org-c"}),
    ("Patient?_has:ServiceRequest:subject:status=active&gender=female", {"pat-li"}),
    # negation inside a chain or _has: the negated set is taken among resources of the inner type
    ("ServiceRequest?subject:Patient.gender:not=male", {"sr-3", "sr-4", "sr-5"}),
    ("Patient?_has:ServiceRequest:subject:status:not=active", {"pat-zhang", "pat-li", "pat-erica"}),
    # --- common parameters
    ("Patient?_id=pat-li", {"pat-li"}),
    ("Patient?_id=pat-li,pat-erica", {"pat-li", "pat-erica"}),
    ("Patient?_id:not=pat-li&gender=female", {"pat-erica"}),
    ("Patient?_id=|pat-li", {"pat-li"}),
    ("Patient?_id=http://example.cn/ids|pat-li", set()),
    ("Patient?_id:missing=false&gender=female", {"pat-li", "pat-erica"}),
    ("Patient?_id:missing=true", set()),
    ("ServiceRequest?subject._id=pat-li", {"sr-3", "sr-5"}),
    ("Patient?_has:ServiceRequest:subject:_id=sr-3", {"pat-li"}),
    ("Patient?_has:ServiceRequest:subject:_id:not=sr-3&gender=female", {"pat-li", "pat-erica"}),
    ("Patient?_tag=http://example.cn/tags|vip", {"pat-li"}),
    ("Patient?_tag=vip", {"pat-li"}),
    ("Patient?_security=R", {"pat-li"}),
    ("ServiceRequest?_profile=http://example.cn/fhir/StructureDefinition/cn-referral-request", {"sr-1"}),
    ("Patient?_lastUpdated=gt2000-01-01", {"pat-zhang", "pat-li", "pat-erica", "pat-nobirth"}),
    ("Patient?_lastUpdated=lt2000-01-01", set()),
    # --- sorting (order matters)
    ("ServiceRequest?_sort=authored", ["sr-4", "sr-1", "sr-3", "sr-2", "sr-5"]),
    ("ServiceRequest?_sort=-authored", ["sr-5", "sr-2", "sr-3", "sr-1", "sr-4"]),
    ("ServiceRequest?_sort=subject,-authored", ["sr-4", "sr-5", "sr-3", "sr-2", "sr-1"]),
    ("ServiceRequest?_sort=status,_id", ["sr-1", "sr-3", "sr-2", "sr-4", "sr-5"]),
    ("Patient?_sort=birthdate", ["pat-zhang", "pat-li", "pat-erica", "pat-nobirth"]),
    ("Patient?_sort=-birthdate", ["pat-erica", "pat-li", "pat-zhang", "pat-nobirth"]),
    ("Patient?_sort=-_id", ["pat-zhang", "pat-nobirth", "pat-li", "pat-erica"]),
    ("Observation?_sort=value-quantity&value-quantity:missing=false", ["obs-hb", "obs-wt"]),
    ("RiskAssessment?_sort=probability", ["risk-1"]),
]


def _ids(bundle: dict, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == mode]


@pytest.mark.parametrize("query,expected", CASES, ids=[c[0] for c in CASES])
def test_search_case(loaded, query, expected):
    client, _ = loaded
    response = client.get(f"/{query}", headers={"Prefer": "handling=strict"})
    assert response.status_code == 200, response.text
    bundle = response.json()
    ids = _ids(bundle)
    if isinstance(expected, list):
        assert ids == expected
    else:
        assert set(ids) == expected
        assert len(ids) == len(set(ids))
    assert bundle["total"] == len(expected)


@pytest.mark.parametrize("query,expected", CASES[::7], ids=[c[0] for c in CASES[::7]])
def test_post_search_matches_get(loaded, query, expected):
    client, _ = loaded
    resource_type, _, query_string = query.partition("?")
    response = client.post(f"/{resource_type}/_search", content=query_string,
                           headers={"Prefer": "handling=strict", "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text
    assert sorted(_ids(response.json())) == sorted(expected)


def test_system_search_by_id(loaded):
    client, _ = loaded
    response = client.get("/?_id=pat-li,sr-3", headers={"Prefer": "handling=strict"})
    assert response.status_code == 200, response.text
    assert sorted(_ids(response.json())) == ["pat-li", "sr-3"]


@pytest.mark.parametrize("modifier", ["text", "in", "below", "of-type"])
def test_id_takes_no_text_or_value_set_modifiers(loaded, modifier):
    client, _ = loaded
    response = client.get(f"/Patient?_id:{modifier}=pat-li", headers={"Prefer": "handling=strict"})
    assert response.status_code == 400, response.text
