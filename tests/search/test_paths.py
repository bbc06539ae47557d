"""The compiled FHIRPath subset gives the same values as the full engine for the shapes it covers."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import fhirpathpy
import pytest
from fhirpathpy.models import models

from fhir_server.resource_types import RESOURCE_TYPES
from fhir_server.search import paths
from fhir_server.search.registry import default_registry
from tests.search.conftest import referral_resources

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "spec"


def _resources() -> list[dict]:
    found = referral_resources()
    for path in sorted(SPEC.glob("*.json")):
        doc = json.loads(path.read_text("utf-8"))
        if doc.get("resourceType") in RESOURCE_TYPES:
            found.append(doc)
    return found


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (float, Decimal)):
        return str(Decimal(str(value)))
    return value


def _normal(values: list) -> list:
    return sorted(json.dumps(_plain(v), sort_keys=True, default=str) for v in values)


@pytest.mark.parametrize("resource", _resources(), ids=lambda r: f"{r['resourceType']}-{r.get('id')}")
def test_compiled_walkers_agree_with_fhirpathpy(resource):
    registry = default_registry()
    rtype = resource["resourceType"]
    for param in registry.params(rtype):
        if not param.expression or param.type in ("composite", "special") or "resolve()" in param.expression:
            continue
        try:
            expected = fhirpathpy.evaluate(resource, param.expression.replace("Resource.", f"{rtype}."), {},
                                           models["r4"])
        except Exception:  # noqa: BLE001 - expressions fhirpathpy cannot run are out of scope here
            continue
        walker = paths.compile_expression(param.expression, rtype if param.owner != "Resource" else "Resource")
        assert _normal(walker(resource)) == _normal(expected), param.code


def test_choice_types_where_and_casts():
    observation = {"resourceType": "Observation", "valueQuantity": {"value": 1}, "effectivePeriod": {"start": "2024"},
                   "codeFilter": "not a choice"}
    assert paths.compile_expression("Observation.value", "Observation")(observation) == [{"value": 1}]
    assert paths.compile_expression("(Observation.value as Quantity)", "Observation")(observation) == [{"value": 1}]
    assert paths.compile_expression("Observation.value.as(String)", "Observation")(observation) == []
    assert paths.compile_expression("Observation.code", "Observation")(observation) == []
    patient = {"resourceType": "Patient", "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "e"}]}
    assert paths.compile_expression("Patient.telecom.where(system='email')", "Patient")(patient) == [
        {"system": "email", "value": "e"}]
    task = {"resourceType": "Task", "for": {"reference": "Patient/1"}}
    assert paths.compile_expression("Task.for.where(resolve() is Patient)", "Task")(task) == [{"reference": "Patient/1"}]
    assert paths.compile_expression("Task.for.where(resolve() is Group)", "Task")(task) == []
    ext = {"resourceType": "ServiceRequest", "extension": [{"url": "u", "valueCode": "up"}]}
    assert paths.compile_expression("ServiceRequest.extension('u').value", "ServiceRequest")(ext) == ["up"]


def test_first_elements_name_where_a_walk_starts():
    patient = {"deceased": ["deceasedBoolean", "deceasedDateTime"]}
    assert paths.first_elements("Patient.name.family", "Patient", patient) == ("name",)
    assert paths.first_elements("Patient.name | Patient.address.city", "Patient", patient) == ("name", "address")
    assert paths.first_elements("Patient.deceased", "Patient", patient) == (
        "deceased", "deceasedBoolean", "deceasedDateTime")
    assert paths.first_elements("Resource.meta.profile", "Resource", {}) == ("meta",)
    assert paths.first_elements("ServiceRequest.extension('u').value", "ServiceRequest", {}) == ("extension",)
    assert paths.first_elements("Task.for.where(resolve() is Patient)", "Task", {}) == ("for",)
    observation = {"value": ["valueQuantity", "valueString"]}
    assert paths.first_elements("(Observation.value as Quantity)", "Observation", observation) == (
        "value", "valueQuantity", "valueString")
    # not decided: a name that is a choice somewhere, without the type's choices; the engine's expressions
    assert paths.first_elements("Patient.name", "Patient") is None
    assert paths.first_elements("Patient.deceased.exists() and Patient.deceased != false", "Patient") is None
    assert paths.first_elements("Bundle.entry[0].resource", "Bundle") is None


@pytest.mark.parametrize("resource", _resources(), ids=lambda r: f"{r['resourceType']}-{r.get('id')}")
def test_a_walk_finds_nothing_when_its_first_elements_are_absent(resource):
    rtype = resource["resourceType"]
    for param in default_registry().params(rtype):
        if not param.expression or param.type in ("composite", "special"):
            continue
        root = rtype if param.owner != "Resource" else "Resource"
        first = paths.first_elements(param.expression, root, _choices(rtype))
        if first is not None and not any(name in resource for name in first):
            assert paths.compile_expression(param.expression, root)(resource) == [], param.code


def _choices(rtype: str):
    return default_registry().elements.get(rtype, {}).get("choices")


def test_first_elements_cover_every_json_name_the_models_allow():
    """The spec's choice elements (data/elements.json) name every variant the fhir.resources model accepts
    where a search parameter starts: a skipped walk never misses a value the shape check let in."""
    from fhir_server.resource_types import model_class

    for rtype in sorted(RESOURCE_TYPES):
        model = {name: list(names) for name, names in
                 model_class(rtype).model_construct().get_one_of_many_fields().items()}
        for param in default_registry().params(rtype):
            if not param.expression or param.type in ("composite", "special"):
                continue
            root = rtype if param.owner != "Resource" else "Resource"
            skipped = paths.first_elements(param.expression, root, _choices(rtype))
            if skipped is not None:
                assert set(paths.first_elements(param.expression, root, model) or ()) <= set(skipped), (
                    rtype, param.code)
