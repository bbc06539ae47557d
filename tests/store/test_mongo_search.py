"""The MongoDB search returns what the SQLite search returns: the same matches in the same order,
the same totals and the same included resources (in the same order too), page after page
through the cursors.

Both backends hold the referral search fixture, written in the same order. Backward paging is
checked on MongoDB against its own forward pages.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.repository import Repository
from tests.conftest import make_store

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "search" / "referral-collection.json"
LOINC = "http://loinc.org"
QUERIES = [
    "Patient",
    "Patient?_count=1",
    "Patient?_sort=birthdate",
    "Patient?_sort=-birthdate&_count=2",
    "Patient?_sort=name,-_id",
    "Patient?_sort=-_lastUpdated&_count=3",
    "Patient?gender:not=female&_sort=_id",
    "Patient?birthdate:missing=false&_sort=-birthdate",
    "Patient?name:contains=an&_count=1",
    "Patient?_has:ServiceRequest:subject:status=active",
    "ServiceRequest?_sort=-authored&_count=2",
    "ServiceRequest?_sort=priority,authored&_count=2",
    "ServiceRequest?subject:Patient.name=zhang",
    "ServiceRequest?authored=ge2024-02-01&authored=lt2024-03-01&_sort=authored",
    "ServiceRequest?_include=ServiceRequest:subject&_revinclude=Task:focus",
    "ServiceRequest?status=active&_include=*&_count=1",
    "Task?status=requested,received&_sort=status,-_lastUpdated&_count=2",
    "Task?_include=Task:focus&_include:iterate=ServiceRequest:subject",
    "Task?_sort=-focus&_count=4",
    f"Observation?component-code-value-quantity={LOINC}|8480-6$gt140",
    f"Observation?component-code-value-quantity={LOINC}|8462-4$gt140",
    f"Observation?combo-code-value-quantity={LOINC}|718-7$13.2",
    "Observation?value-quantity=gt13|http://unitsofmeasure.org|g/dL",
    "Observation?value-quantity=72.5&_sort=value-quantity",
    "Observation?_sort=-value-quantity",
    "Observation?code:text=smoking,body",
    "Observation?_total=none&_count=2",
    "RiskAssessment?_sort=probability",
]


def _loaded(backend: str, tmp_path: Path):
    store = make_store(backend, tmp_path)
    app = create_app(Settings(data_dir=tmp_path, base_url="http://testserver"), store)
    return store, app


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    opened = []
    clients = {}
    resources = [e["resource"] for e in json.loads(FIXTURE.read_text("utf-8"))["entry"]]
    for backend in ("sqlite", "mongomock"):
        store, app = _loaded(backend, tmp_path_factory.mktemp(backend))
        # written by a bare repository: the comparison is about search, not about the write checks
        repository = Repository(store, Settings())
        for resource in resources:
            repository.update(resource["resourceType"], resource["id"], resource)
        client = TestClient(app)
        client.__enter__()
        opened.append((client, store))
        clients[backend] = client
    yield clients
    for client, store in opened:
        client.__exit__(None, None, None)
        store.close()


def _page(bundle: dict) -> tuple:
    entries = [(e["search"]["mode"], "/".join(e["fullUrl"].rsplit("/", 2)[-2:])) for e in bundle.get("entry", [])]
    return (bundle.get("total"), [e for e in entries if e[0] == "match"],
            [e for e in entries if e[0] != "match"])


def _links(bundle: dict) -> dict:
    return {link["relation"]: link["url"] for link in bundle.get("link", [])}


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _walk(client, url: str, relation: str = "next") -> tuple[list[tuple], dict]:
    """Every page from ``url`` following ``relation`` links, and the last page's bundle."""
    pages, bundle = [], client.get(url).json()
    assert bundle.get("resourceType") == "Bundle", bundle
    while True:
        pages.append(_page(bundle))
        link = _links(bundle).get(relation)
        if link is None or len(pages) > 20:
            return pages, bundle
        bundle = client.get(_relative(link)).json()


@pytest.mark.parametrize("url", QUERIES)
def test_mongodb_search_matches_sqlite(clients, url):
    expected, _ = _walk(clients["sqlite"], "/" + url)
    assert _walk(clients["mongomock"], "/" + url)[0] == expected
    assert any(page[1] for page in expected) or "8462-4$gt140" in url


@pytest.mark.parametrize("url", [q for q in QUERIES if "_count" in q])
def test_paging_back_from_the_last_page_gives_the_same_pages(clients, url):
    forward, last = _walk(clients["mongomock"], "/" + url)
    assert len(forward) > 1
    previous = _links(last).get("previous")
    backward, _ = _walk(clients["mongomock"], _relative(previous), "previous")
    assert backward == forward[-2::-1]


@pytest.mark.parametrize("url, expected", [
    # ServiceRequests not active: sr-2 (pat-zhang), sr-4 (pat-erica), sr-5 (pat-li)
    ("Patient?_has:ServiceRequest:subject:status:not=active", ["pat-zhang", "pat-li", "pat-erica"]),
    # patients not male: pat-li (sr-3, sr-5), pat-erica (sr-4), pat-nobirth (none)
    ("ServiceRequest?subject:Patient.gender:not=male", ["sr-3", "sr-4", "sr-5"]),
])
def test_negations_inside_chains_and_has(clients, url, expected):
    bundle = clients["mongomock"].get("/" + url).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == expected and bundle["total"] == len(expected)


def test_a_date_range_holds_on_one_value_of_a_repeating_element(clients):
    """``ge…&lt…`` on one parameter must hold on the same period (both backends), not on two different ones."""
    encounter = {"resourceType": "Encounter", "id": "enc-moves", "status": "finished",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                 "location": [{"location": {"reference": "Location/ward-1"},
                               "period": {"start": "2024-01-01", "end": "2024-01-02"}},
                              {"location": {"reference": "Location/ward-2"},
                               "period": {"start": "2024-03-01", "end": "2024-03-02"}}]}
    for client in clients.values():
        assert client.put("/Encounter/enc-moves", json=encounter).status_code in (200, 201)
    between = "/Encounter?location-period=ge2024-02-01&location-period=lt2024-02-28"
    inside = "/Encounter?location-period=ge2024-02-20&location-period=lt2024-03-05"
    for client in clients.values():
        assert client.get(between).json()["total"] == 0
        assert [e["resource"]["id"] for e in client.get(inside).json()["entry"]] == ["enc-moves"]
