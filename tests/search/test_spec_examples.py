"""Searches over the R4 spec examples in tests/fixtures/spec (CC0), on every backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from tests.conftest import BACKENDS, make_store
from tests.search.conftest import load

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "spec"

CASES = [
    ("Observation?code=http://loinc.org|29463-7", {"example"}),
    ("Observation?code=27113001", {"example"}),
    ("Observation?code=http://loinc.org|", {"example", "f001"}),
    ("Observation?category=vital-signs", {"example"}),
    ("Observation?value-quantity=185||[lb_av]", {"example"}),
    ("Observation?value-quantity=6.3|http://unitsofmeasure.org|mmol/L", {"f001"}),
    ("Observation?value-quantity=gt100", {"example"}),
    ("Observation?date=2016-03-28", {"example"}),
    ("Observation?date=ge2013-04-02", {"example", "f001"}),
    ("Observation?date=lt2014", {"f001"}),
    ("Observation?subject=Patient/f001", {"f001"}),
    ("Observation?subject:Patient.name=chalmers", {"example"}),
    ("Observation?identifier=http://www.bmc.nl/zorgportal/identifiers/observations|6323", {"f001"}),
    ("Observation?encounter=Encounter/example", {"example"}),
    ("Patient?name=peter", {"example"}),
    ("Patient?family=chalm", {"example"}),
    ("Patient?birthdate=1974-12-25", {"example"}),
    ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345", {"example"}),
    ("Patient?_has:Observation:subject:code=29463-7", {"example"}),
    ("Task?owner=Practitioner/example", {"example3"}),
    ("Task?status=draft,in-progress", {"example1", "example3"}),
    ("Task?code:text=refill", {"example3"}),
    ("Task?authored-on=2016-03-11", {"example3"}),  # 22:39 at -04:00 is 02:39 UTC the next day
    ("Task?patient=Patient/f001", {"example3"}),
    ("Encounter?class=AMB&subject=Patient/f001", {"f001"}),
    ("Encounter?identifier=v1451", {"f001"}),
    ("Coverage?beneficiary=Patient/4", {"9876B1"}),
    ("Coverage?policy-holder=http://benefitsinc.com/FHIR/Organization/CBI35", {"9876B1"}),
    ("Coverage?identifier=12345", {"9876B1"}),
    ("CarePlan?date=2011-06", {"f001"}),
    ("CarePlan?date=2011-06-27", set()),  # eq: the period must lie inside the day
    ("CarePlan?date=sa2011-06-25", {"f001"}),
    # f001's period ends on the 27th; example's (no start) runs to 2017
    ("CarePlan?date=ge2011-06-27", {"example"}),
    ("PractitionerRole?date=2012", {"example"}),
    ("PractitionerRole?date=2012-02", set()),
    ("PractitionerRole?organization.name=burgers", {"example"}),
    ("Organization?name=gastro", {"1"}),
    ("ServiceRequest?code=http://loinc.org|24627-2", {"di"}),
    ("ServiceRequest?subject=Patient/example&_include=ServiceRequest:subject", {"example"}),
]


@pytest.fixture(scope="module", params=BACKENDS)
def spec_client(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spec")
    store = make_store(request.param, tmp)
    load(store, [json.loads(p.read_text("utf-8")) for p in sorted(SPEC.glob("*.json"))])
    with TestClient(create_app(Settings(data_dir=tmp, base_url="http://testserver"), store)) as client:
        yield client
    store.close()


@pytest.mark.parametrize("query,expected", CASES, ids=[c[0] for c in CASES])
def test_spec_example_search(spec_client, query, expected):
    response = spec_client.get(f"/{query}", headers={"Prefer": "handling=strict"})
    assert response.status_code == 200, response.text
    ids = {e["resource"]["id"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"}
    assert ids == expected
