"""The IG's conformance resources are served from start-up: searchable by url, read-only, and in /metadata."""

from fhir_server.ig.canonical import PACKAGE_ID, url

JSON = {"Content-Type": "application/fhir+json"}


def test_searchable_by_url(client):
    for resource_type, id_ in [
        ("StructureDefinition", "referral-request"),
        ("StructureDefinition", "referral-direction"),
        ("ValueSet", "referral-scope"),
        ("CodeSystem", "professional-title"),
        ("SearchParameter", "servicerequest-direction"),
        ("ConceptMap", "gbt-2261-1-to-fhir"),
        ("ImplementationGuide", PACKAGE_ID),
    ]:
        bundle = client.get(f"/{resource_type}", params={"url": url(resource_type, id_)}).json()
        assert [e["resource"]["id"] for e in bundle["entry"]] == [id_]


def test_read_only(client):
    sd = client.get("/StructureDefinition/referral-request").json()
    assert client.put("/StructureDefinition/referral-request", json=sd, headers=JSON).status_code == 405
    assert client.delete("/StructureDefinition/referral-request").status_code == 405


def test_listed_in_the_capability_statement(client):
    statement = client.get("/metadata").json()
    assert url("ImplementationGuide", PACKAGE_ID) in statement.get("implementationGuide", [])
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert url("StructureDefinition", "referral-request") in resources["ServiceRequest"].get("supportedProfile", [])
    assert url("StructureDefinition", "referral-task") in resources["Task"].get("supportedProfile", [])
    operations = {op["name"] for r in resources.values() for op in r.get("operation", [])}
    operations |= {op["name"] for op in statement["rest"][0].get("operation", [])}
    assert {"validate", "expand", "validate-code", "lookup", "translate"} <= operations
