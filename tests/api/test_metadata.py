"""The CapabilityStatement reflects what is registered."""

from __future__ import annotations

from fhir_server.api import operations
from fhir_server.resource_types import RESOURCE_TYPES


def test_capability_statement_lists_every_type_and_interaction(client):
    statement = client.get("/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    types = {r["type"] for r in rest["resource"]}
    assert types == set(RESOURCE_TYPES)
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    codes = {i["code"] for i in patient["interaction"]}
    assert {"read", "vread", "create", "update", "patch", "delete", "history-instance", "search-type"} <= codes
    assert {i["code"] for i in rest["interaction"]} >= {"transaction", "batch", "history-system"}
    assert "application/fhir+xml" in statement["format"]


def test_capability_statement_lists_registered_operations(client):
    statement = client.get("/metadata").json()
    listed = {op["name"] for op in statement["rest"][0].get("operation", [])}
    for resource in statement["rest"][0]["resource"]:
        listed |= {op["name"] for op in resource.get("operation", [])}
    assert {op.name for op in operations.registered() if op.listed} <= listed


def test_capability_statement_as_xml(client):
    response = client.get("/metadata", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 200
    assert response.content.lstrip().startswith((b"<?xml", b"<CapabilityStatement"))


def test_resource_types_match_fhir_resources():
    import importlib
    import pkgutil

    import fhir.resources.R4B as r4b
    from fhir.resources.R4B.resource import Resource

    found = set()
    for module in pkgutil.iter_modules(r4b.__path__):
        mod = importlib.import_module(f"fhir.resources.R4B.{module.name}")
        for name, value in vars(mod).items():
            if (isinstance(value, type) and issubclass(value, Resource) and value.__module__ == mod.__name__
                    and name.lower() == module.name and name not in ("Resource", "DomainResource")):
                found.add(name)
    assert found == set(RESOURCE_TYPES)


def test_openapi_document_describes_the_rest_paths(client):
    """The REST routes are served as plain Starlette routes; the OpenAPI document still lists them."""
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/", "/metadata", "/{first}", "/{resource_type}/{second}", "/{resource_type}/{id}/{third}",
            "/{resource_type}/{id}/_history/{version}"} <= set(paths)
    assert {"get", "post", "put", "delete", "patch"} <= set(paths["/{resource_type}/{second}"])
    ids = [operation["operationId"] for path in paths.values() for operation in path.values()]
    assert len(ids) == len(set(ids))
