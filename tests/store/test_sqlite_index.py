"""SQLite search plans: the queries a referral centre runs use indexes, never a full table scan."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import pytest

from fhir_server.search.bundle import parser_for
from fhir_server.store.sqlite import SQLiteStore
from tests.search.conftest import load, referral_resources

QUERIES = [
    ("Task", "owner=Organization/org-a&status=requested,received"),
    ("Task", "status=requested"),
    ("ServiceRequest", "authored=ge2024-02-01&authored=lt2024-03-01"),
    ("ServiceRequest", "authored=gt2024-02-01"),
    ("ServiceRequest", "subject:Patient.identifier=http://example.cn/fhir/NamingSystem/national-id|620102198001011234"
                       "&_include=ServiceRequest:subject&_revinclude=Task:focus&_sort=-authored&_count=10"),
    ("Task", "focus:ServiceRequest.subject:Patient.identifier=620102199002022345"),
    ("Patient", "_has:ServiceRequest:subject:status=active"),
    ("Patient", "name=zh"),
    ("Patient", "identifier=620102198001011234&_revinclude=ServiceRequest:subject"),
    ("Patient", "_id=pat-li&_revinclude=*&_include=*"),
    ("Observation", "component-code-value-quantity=http://loinc.org|8480-6$gt140"),
    ("Patient", "_count=2"),
    ("Patient", "_id=pat-li"),
]
#: a SCAN of a stored table (a scan of a subquery result or of the driving rid set "m" is fine)
FULL_SCAN = re.compile(r"^SCAN (?!m\b|\(subquery|i\b)(\w+)")


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    store = SQLiteStore(tmp_path_factory.mktemp("plans") / "fhir.db")
    load(store, referral_resources())
    conn = store._connection()
    parser = parser_for("http://testserver")
    found = {}
    for resource_type, query_string in QUERIES:
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        try:
            with store.session() as session:
                session.search(parser.parse([resource_type], parse_qsl(query_string), strict=True))
        finally:
            conn.set_trace_callback(None)
        found[(resource_type, query_string)] = [
            (statement, [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement)])
            for statement in statements if statement.startswith("SELECT")
        ]
    yield found
    store.close()


@pytest.mark.parametrize("resource_type,query_string", QUERIES, ids=[f"{t}?{q}" for t, q in QUERIES])
def test_no_full_table_scan(plans, resource_type, query_string):
    statements = plans[(resource_type, query_string)]
    assert statements
    for statement, plan in statements:
        scans = [line for line in plan if FULL_SCAN.match(line)]
        assert not scans, f"{statement}\n{plan}"


def test_token_query_uses_the_token_index(plans):
    plan = [line for _, lines in plans[("Task", "status=requested")] for line in lines]
    assert any("idx_token_value" in line for line in plan)


def test_date_range_uses_a_date_index(plans):
    plan = [line for _, lines in plans[("ServiceRequest", "authored=gt2024-02-01")] for line in lines]
    assert any("idx_date_range" in line for line in plan)


def test_chain_joins_by_primary_key_and_reference_index(plans):
    key = ("Task", "focus:ServiceRequest.subject:Patient.identifier=620102199002022345")
    plan = [line for _, lines in plans[key] for line in lines]
    assert any("idx_reference_target" in line for line in plan)
    assert any("INTEGER PRIMARY KEY" in line for line in plan)


def test_id_is_matched_on_the_resource_table(plans):
    plan = [line for _, lines in plans[("Patient", "_id=pat-li")] for line in lines]
    assert any("idx_resource_id" in line for line in plan)


def test_ids_take_no_index_rows_and_a_search_over_all_types_probes_by_type(tmp_path):
    from fhir_server.search.extract import ID_KEY

    store = SQLiteStore(tmp_path / "fhir.db")
    try:
        load(store, referral_resources())
        conn = store._connection()
        assert conn.execute("SELECT count(*) FROM idx_token WHERE param = ?", (ID_KEY,)).fetchone()[0] == 0
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        with store.session() as session:
            result = session.search(parser_for("http://testserver").parse([], [("_id", "pat-li")], strict=True))
        conn.set_trace_callback(None)
        assert [(r.resource_type, r.id) for r in result.matches] == [("Patient", "pat-li")]
        for statement in (s for s in statements if s.startswith("SELECT")):
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement)]
            assert not [line for line in plan if FULL_SCAN.match(line)], plan
    finally:
        store.close()


def test_references_any_answers_from_the_current_version_index_rows(tmp_path):
    """The access check by id asks the index, not the body: it follows updates and deletions, and uses indexes;
    ``read_admitted`` reads the record and answers the same in one statement."""
    import json

    from fhir_server.search.registry import default_registry
    from fhir_server.store import StoredResource

    performer = default_registry().get("ServiceRequest", "performer").key
    requester = default_registry().get("ServiceRequest", "requester").key
    store = SQLiteStore(tmp_path / "fhir.db")

    def write(version: int, organization: str | None) -> None:
        resource = {"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
                    "subject": {"reference": "Patient/p1"}}
        if organization:
            resource["performer"] = [{"reference": f"Organization/{organization}"}]
        with store.session(write=True) as session:
            session.write(StoredResource("ServiceRequest", "sr1", version, f"2026-01-0{version}T00:00:00Z",
                                         organization is None, b"" if organization is None else
                                         json.dumps(resource).encode()), None if organization is None else
                          resource, version - 1)

    def admitted(*rows) -> bool:
        with store.session() as session:
            answer = session.references_any("ServiceRequest", "sr1", rows)
            # the read by id with the same check in one statement agrees, and reads the same record
            record, fused = session.read_admitted("ServiceRequest", "sr1", rows)
            assert fused == answer and record == session.read("ServiceRequest", "sr1")
            assert session.read_admitted("ServiceRequest", "absent", rows) == (None, False)
            return answer

    try:
        write(1, "org-a")
        assert admitted((performer, "Organization", "org-a"))
        assert admitted((requester, "Organization", "org-a"), (performer, "Organization", "org-a"))
        assert not admitted((requester, "Organization", "org-a"))  # the right party, under another parameter
        assert not admitted((performer, "Organization", "org-b")) and not admitted()
        write(2, "org-b")
        assert admitted((performer, "Organization", "org-b")) and not admitted((performer, "Organization", "org-a"))
        write(3, None)  # deleted
        assert not admitted((performer, "Organization", "org-b"))
        conn = store._connection()
        from fhir_server.store.sqlite import _read_admitted_query
        from fhir_server.store.sqlite_index import references_any_query

        rows = frozenset({(performer, "Organization", "a"), (requester, "Organization", "a")})
        for sql, values in (references_any_query(rows), _read_admitted_query(rows)):
            assert len(values) == 4  # the organisation's type and id bound once for both rows
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, ("ServiceRequest", "sr1", *values))]
            assert not [line for line in plan if FULL_SCAN.match(line)], plan
    finally:
        store.close()
