"""Index rows extracted from resources: what each value kind turns into."""

from __future__ import annotations

from fhir_server.search.extract import ID_KEY, LAST_UPDATED_KEY, Extraction
from fhir_server.search.registry import default_registry, param_key
from fhir_server.search.values import date_range
from tests.search.conftest import referral_resources


def _rows(resource: dict) -> dict:
    return Extraction(default_registry()).rows(resource["resourceType"], resource["id"], resource,
                                               "2024-05-01T00:00:00Z")


def _fixture(id: str) -> dict:
    return next(r for r in referral_resources() if r["id"] == id)


def _of(rows: list, rtype: str, code: str) -> list:
    key = param_key(rtype, code)
    return [r[1:] for r in rows if r[0] == key]


def test_patient_rows():
    rows = _rows(_fixture("pat-zhang"))
    assert (None, "pat-zhang", None, None) in [r[1:] for r in rows["token"] if r[0] == ID_KEY]
    assert [r[1:] for r in rows["date"] if r[0] == LAST_UPDATED_KEY] == [(*date_range("2024-05-01T00:00:00Z"), None)]
    names = {r[0] for r in _of(rows["string"], "Patient", "name")}
    assert {"张", "三", "张三", "zhang", "san"} <= names
    assert ("http://example.cn/fhir/NamingSystem/national-id", "620102198001011234", None, None) in \
        _of(rows["token"], "Patient", "identifier")
    of_type = default_registry().get("Patient", "identifier").sub_key("of-type")
    assert [r[1:4] for r in rows["token"] if r[0] == of_type] == [
        ("http://terminology.hl7.org/CodeSystem/v2-0203", "NI", "620102198001011234")]
    assert _of(rows["token"], "Patient", "gender") == [(None, "male", None, None)]
    assert _of(rows["token"], "Patient", "phone") == [("phone", "13800000001", None, None)]
    assert _of(rows["reference"], "Patient", "organization") == [("Organization", "org-a", None, None)]
    assert _of(rows["date"], "Patient", "birthdate") == [(*date_range("1980-01-01"), None)]
    assert _of(rows["token"], "Patient", "deceased") == [(None, "false", None, None)]


def test_service_request_rows():
    rows = _rows(_fixture("sr-1"))
    assert _of(rows["reference"], "ServiceRequest", "subject") == [("Patient", "pat-zhang", None, None)]
    assert _of(rows["token"], "ServiceRequest", "code") == [("http://snomed.info/sct", "306206005",
                                                             "referral to service", None)]
    low, _ = date_range("2024-03-01")
    _, high = date_range("2024-03-10")
    assert _of(rows["date"], "ServiceRequest", "occurrence") == [(low, high, None)]
    profile = [r[1:] for r in rows["reference"] + rows["uri"] if r[0] == param_key("Resource", "_profile")]
    assert profile and profile[0][-2].endswith("cn-referral-request")


def test_references_absolute_canonical_and_identifier():
    obs = _rows(_fixture("obs-text"))
    assert _of(obs["reference"], "Observation", "subject") == [
        (None, None, "http://other.example.org/fhir/Patient/pat-zhang", None)]
    task = {"resourceType": "Task", "id": "t", "owner": {"identifier": {"system": "s", "value": "v"}},
            "focus": {"reference": "ServiceRequest/1/_history/2"}}
    rows = _rows(task)
    owner = default_registry().get("Task", "owner")
    assert [r[1:3] for r in rows["token"] if r[0] == owner.sub_key("identifier")] == [("s", "v")]
    assert _of(rows["reference"], "Task", "focus") == [("ServiceRequest", "1", None, None)]


def test_composite_rows_share_a_group_per_component():
    rows = _rows(_fixture("obs-bp"))
    param = default_registry().get("Observation", "component-code-value-quantity")
    codes = {r[2]: r[-1] for r in rows["token"] if r[0] == param.component_key(0)}
    values = {r[1]: r[-1] for r in rows["quantity"] if r[0] == param.component_key(1)}
    assert codes["8480-6"] == values[150.0] and codes["8462-4"] == values[95.0]
    assert codes["8480-6"] != codes["8462-4"]


def test_quantity_ranges_index_both_ends():
    definition = {"resourceType": "ActivityDefinition", "id": "a", "useContext": [
        {"code": {"code": "age"}, "valueRange": {"low": {"value": 1, "code": "a"}, "high": {"value": 3, "code": "a"}}}]}
    values = sorted(r[0] for r in _of(_rows(definition)["quantity"], "ActivityDefinition", "context-quantity"))
    assert values == [1.0, 3.0]


def test_malformed_values_are_skipped_not_fatal():
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "not-a-date", "name": [{"family": 5}],
               "identifier": [{"value": 7}], "managingOrganization": {"reference": 3}}
    rows = _rows(patient)
    assert _of(rows["date"], "Patient", "birthdate") == []
    assert _of(rows["string"], "Patient", "family") == []


def test_reference_rows_alone_match_the_full_extraction():
    extraction = Extraction(default_registry())
    for resource in referral_resources():
        full = extraction.rows(resource["resourceType"], resource.get("id", "x"), resource)["reference"]
        assert extraction.references(resource["resourceType"], resource) == full, resource.get("id")


def test_skipping_walks_of_absent_elements_changes_no_row():
    """The extractor walks a parameter only when the resource has an element its path starts from."""
    from tests.search.test_paths import _resources

    extraction = Extraction(default_registry())
    for resource in _resources():
        rtype = resource["resourceType"]
        extractor = extraction.extractor(rtype)
        rows = extractor.rows(resource.get("id", "x"), resource, "2024-05-01T00:00:00Z")
        skipping = extractor.plain
        extractor.plain = [(param, walker, None) for param, walker, _ in skipping]
        try:
            assert extractor.rows(resource.get("id", "x"), resource, "2024-05-01T00:00:00Z") == rows, rtype
        finally:
            extractor.plain = skipping


def _sorted(rows: dict) -> dict:
    return {kind: sorted(values, key=repr) for kind, values in rows.items()}


def test_batch_extraction_gives_each_resource_its_own_rows():
    """rows_batch walks an element value the batch shares once; every resource still gets exactly its rows."""
    from decimal import Decimal

    from fhir_server.security.audit import audit_event
    from tests.search.test_paths import _resources

    extraction = Extraction(default_registry())
    resources = referral_resources() + _resources()
    # values that are equal in Python but index differently, and an element shared with a varying neighbour
    resources += [
        {"resourceType": "Observation", "id": "q1", "valueQuantity": {"value": Decimal("1.0"), "unit": "mg"}},
        {"resourceType": "Observation", "id": "q2", "valueQuantity": {"value": Decimal("1.00"), "unit": "mg"}},
        {"resourceType": "Observation", "id": "q3", "valueQuantity": {"value": 1, "unit": "mg"}},
        {"resourceType": "Observation", "id": "b1", "valueBoolean": True},
        {"resourceType": "Observation", "id": "b2", "valueInteger": 1},
    ]
    records = [{"interaction": interaction, "status": status, "method": "GET", "path": "/x", "address": address,
                "client_id": client, "organization": client and "Organization/org-a", "resource_type": "Task",
                "id": f"t{n}", "query": "status=requested" if interaction.startswith("search") else None,
                "at": 1_700_000_000_000_000_000 + n * 1000}
               for n, (interaction, status, address, client) in enumerate(
                   [("read", 200, "10.0.0.1", "client-a"), ("read", 200, "10.0.0.1", "client-a"),
                    ("read", 404, "10.0.0.2", "client-a"), ("search-type", 200, None, None),
                    ("token", 401, "10.0.0.1", "client-b"), ("read", 200, "10.0.0.1", "client-a")])]
    resources += [{**audit_event(record), "id": f"ae{n}"} for n, record in enumerate(records)]
    by_type: dict[str, list] = {}
    for resource in resources + resources[::-1]:  # every element value seen twice, in both orders
        by_type.setdefault(resource["resourceType"], []).append(resource)
    for rtype, of_type in by_type.items():
        extractor = extraction.extractor(rtype)
        items = [(r.get("id", "x"), r, "2024-05-01T00:00:00Z") for r in of_type]
        batch = extractor.rows_batch(items)
        assert len(batch) == len(items)
        for (id, resource, last_updated), rows in zip(items, batch):
            assert _sorted(rows) == _sorted(extractor.rows(id, resource, last_updated)), (rtype, id)
