"""Parsing parameters into the typed, backend-neutral search expression."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fhir_server.errors import FhirError
from fhir_server.search.query import (AnyOf, Chain, Clause, CompositeValue, DateValue, Has, MissingValue,
                                      OfTypeValue, Parser, QuantityValue, ReferenceValue, StringValue, TokenValue,
                                      compartment_condition, split_unescaped, unescape)
from fhir_server.search.registry import default_registry
from fhir_server.search.values import date_range


@pytest.fixture(scope="module")
def parser():
    return Parser(default_registry(), "http://fhir.example.cn/r4")


def _one(parser, rtype, name, value):
    query = parser.parse([rtype], [(name, value)], strict=True)
    assert len(query.conditions) == 1
    return query.conditions[0]


def test_token_forms(parser):
    assert _one(parser, "Patient", "identifier", "s|v").values == (TokenValue("s", "v"),)
    assert _one(parser, "Patient", "identifier", "|v").values == (TokenValue("", "v"),)
    assert _one(parser, "Patient", "identifier", "s|").values == (TokenValue("s", None),)
    assert _one(parser, "Patient", "identifier", "v").values == (TokenValue(None, "v"),)
    assert _one(parser, "Patient", "identifier", "a\\|b").values == (TokenValue(None, "a|b"),)
    assert _one(parser, "Patient", "identifier:of-type", "s|MR|1").values == (OfTypeValue("s", "MR", "1"),)
    clause = _one(parser, "Patient", "gender:text", "Mä")
    assert clause.values == (StringValue("Mä", "ma"),)


def test_or_values_and_escaped_commas(parser):
    assert _one(parser, "Patient", "gender", "male,female").values == (TokenValue(None, "male"),
                                                                      TokenValue(None, "female"))
    assert _one(parser, "Patient", "name", "a\\,b").values == (StringValue("a,b", "a,b"),)
    assert split_unescaped("a\\,b,c", ",") == ["a\\,b", "c"]
    assert unescape("a\\$b\\\\") == "a$b\\"


def test_date_prefixes(parser):
    clause = _one(parser, "Patient", "birthdate", "ge2024-02")
    low, high = date_range("2024-02")
    assert clause.values == (DateValue("ge", low, high),)
    assert _one(parser, "Patient", "birthdate", "2024").values[0].prefix == "eq"


def test_quantity_and_number(parser):
    value = _one(parser, "Observation", "value-quantity", "lt5.40|http://unitsofmeasure.org|mg").values[0]
    assert value == QuantityValue("lt", Decimal("5.40"), Decimal("5.395"), Decimal("5.405"),
                                  "http://unitsofmeasure.org", "mg")
    assert _one(parser, "Observation", "value-quantity", "5||mg").values[0].code == "mg"


def test_references(parser):
    assert _one(parser, "ServiceRequest", "subject", "Patient/1").values == (ReferenceValue("Patient", "1", None),)
    assert _one(parser, "ServiceRequest", "subject", "http://fhir.example.cn/r4/Patient/1").values == (
        ReferenceValue("Patient", "1", None),)
    assert _one(parser, "ServiceRequest", "subject", "http://elsewhere/Patient/1").values == (
        ReferenceValue(None, None, "http://elsewhere/Patient/1"),)
    assert _one(parser, "ServiceRequest", "subject:Patient", "1").values == (ReferenceValue("Patient", "1", None),)
    clause = _one(parser, "ServiceRequest", "subject:identifier", "s|v")
    assert clause.values == (TokenValue("s", "v"),)
    assert clause.key == default_registry().get("ServiceRequest", "subject").sub_key("identifier")


def test_chains_and_has(parser):
    chain = _one(parser, "ServiceRequest", "subject:Patient.organization.name", "x")
    assert isinstance(chain, Chain) and [t for t, _ in chain.targets] == ["Patient"]
    inner = chain.targets[0][1]
    assert isinstance(inner, Chain) and isinstance(inner.targets[0][1], Clause)
    untyped = _one(parser, "ServiceRequest", "subject.name", "x")
    # the targets of subject (Group, Device, Patient, Location) that have a "name" parameter
    assert {t for t, _ in untyped.targets} == {"Patient", "Location"}
    has = _one(parser, "Patient", "_has:Observation:patient:_has:AuditEvent:entity:agent", "Practitioner/1")
    assert isinstance(has, Has) and isinstance(has.condition, Has)


def test_composite_and_missing(parser):
    value = _one(parser, "Observation", "code-value-quantity", "http://loinc.org|8480-6$gt100").values[0]
    assert isinstance(value, CompositeValue)
    assert value.parts[0][2] == TokenValue("http://loinc.org", "8480-6")
    assert value.parts[1][2].prefix == "gt"
    assert _one(parser, "Patient", "birthdate:missing", "true").values == (MissingValue(True),)


def test_result_parameters(parser):
    query = parser.parse(["ServiceRequest"], [("_sort", "-authored,_id"), ("_count", "5000"), ("_total", "none"),
                                              ("_include", "ServiceRequest:subject:Patient"),
                                              ("_revinclude:iterate", "Task:focus"), ("_summary", "true"),
                                              ("_elements", "status,subject")], strict=True)
    assert [(k.param.code, k.descending) for k in query.sort] == [("authored", True), ("_id", False)]
    assert query.count == 1000
    assert query.total == "none" and query.summary == "true" and query.elements == ["status", "subject"]
    assert query.includes[0].target_type == "Patient" and not query.includes[0].iterate
    assert query.revincludes[0].iterate and query.revincludes[0].reverse


@pytest.mark.parametrize("name,value", [("nonsense", "1"), ("gender:exact", "x"), ("_sort", "nonsense"),
                                        ("subject:Nonsense", "1"), ("name.family", "x"), ("_include", "Patient:x")])
def test_strict_rejects_unknown(parser, name, value):
    rtype = "ServiceRequest" if name.startswith("subject") else "Patient"
    with pytest.raises(FhirError) as info:
        parser.parse([rtype], [(name, value)], strict=True)
    assert info.value.status == 400 and info.value.issues[0]["expression"] == [name]
    lenient = parser.parse([rtype], [(name, value)], strict=False)
    assert lenient.ignored and lenient.ignored[0]["expression"] == [name] and not lenient.used


def test_compartment_condition_uses_the_official_definition():
    registry = default_registry()
    condition = compartment_condition(registry, "Patient", "p1", "ServiceRequest")
    assert isinstance(condition, AnyOf)
    assert {c.param.code for c in condition.conditions} == {"subject", "performer"}
    assert compartment_condition(registry, "Patient", "p1", "Organization") is None
