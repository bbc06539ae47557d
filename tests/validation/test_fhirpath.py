"""The fast invariant evaluator gives fhirpathpy's answers, on the IG's invariants and on edge cases."""

import json

import pytest
from fhirpathpy import compile as fhirpathpy_compile
from fhirpathpy.models import models

from fhir_server.ig.canonical import IG_DIR
from fhir_server.ig.loader import resources_of_type
from fhir_server.validation.fhirpath import compile_invariant


def _examples():
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((IG_DIR / "examples").rglob("*.json"))]


def _ig_invariants():
    for sd in resources_of_type("StructureDefinition"):
        for element in sd["snapshot"]["element"]:
            for constraint in element.get("constraint", []):
                if constraint.get("source") == sd["url"]:
                    yield sd["type"], constraint["key"], constraint["expression"]


@pytest.mark.parametrize("resource_type,key,expression", list(_ig_invariants()), ids=lambda v: v if isinstance(v, str) and "-" in v and len(v) < 8 else "")
def test_ig_invariants_are_fast_and_agree_with_fhirpathpy(resource_type, key, expression):
    fast = compile_invariant(expression)
    assert getattr(fast, "fast", False), f"{key} falls back to fhirpathpy"
    reference = fhirpathpy_compile(expression, models["r4"])
    resources = [r for r in _examples() if r["resourceType"] in (resource_type, "Extension")]
    assert resources
    for resource in resources:
        assert fast(resource) == reference(resource), resource["id"]


RESOURCE = {
    "resourceType": "CarePlan",
    "status": "active",
    "period": {"start": "2026-01-01", "end": "2026-03-01T10:00:00+08:00"},
    "note": [{"text": "a"}, {"text": "b"}],
    "extension": [{"url": "http://x/e", "valueCoding": {"code": "c"}}, {"url": "http://x/f", "valueBoolean": False}],
    "activity": [{"detail": {"scheduledString": "daily", "quantity": {"value": 1.5}}}],
}


@pytest.mark.parametrize(
    "expression",
    [
        "status = 'active' and note.count() = 2",
        "status != 'active' or note.exists()",
        "note.where(text = 'b').exists() implies status = 'draft'",
        "note.all(text.matches('^[a-z]$'))",
        "extension('http://x/e').value.ofType(Coding).code = 'c'",
        "extension('http://x/f').value.ofType(boolean) = false",
        "extension('http://x/none').exists().not()",
        "period.end >= period.start",
        "activity.detail.quantity.value > 1",
        "(note | note).count() = 2",
        "intent.empty() xor true",
        "activity.detail.scheduled.exists()",
        "note.text = 'a'",
        "status.first() = $this.status",
    ],
)
def test_edge_cases_agree_with_fhirpathpy(expression):
    reference = fhirpathpy_compile(expression, models["r4"])
    assert compile_invariant(expression)(RESOURCE) == reference(RESOURCE)


def test_outside_the_subset_falls_back():
    evaluate = compile_invariant("descendants().count() > 3")
    assert not getattr(evaluate, "fast", False)
    assert evaluate(RESOURCE) == [True]
