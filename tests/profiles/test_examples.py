"""Every example in profiles/examples validates as the IG says: valid ones cleanly, invalid ones with the
expected error at the expected FHIRPath location (tests/profiles/expected_invalid.json)."""

import json
from pathlib import Path

import pytest

from fhir_server.ig.canonical import CANONICAL
from fhir_server.ig.loader import example_paths, resources_of_type
from fhir_server.validation.ig import ig_validator
from fhir_server.validation.structural import structural_issues

EXPECTED = json.loads((Path(__file__).parent / "expected_invalid.json").read_text(encoding="utf-8"))
VALID = example_paths()
INVALID = example_paths(invalid=True)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_example_has_no_issues(path):
    resource = _load(path)
    assert structural_issues(resource) == []
    assert ig_validator().validate(resource) == []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_example_fails_where_expected(path):
    resource = _load(path)
    assert structural_issues(resource) == [], "invalid examples break a profile rule, not the base structure"
    issues = ig_validator().validate(resource)
    errors = [i for i in issues if i["severity"] == "error"]
    for expected in EXPECTED[path.name]:
        assert any(
            e["code"] == expected["code"]
            and expected["expression"] in e.get("expression", [])
            and expected["diagnostics"] in e["diagnostics"]
            for e in errors
        ), f"{path.name}: expected {expected}, got {errors}"


def test_every_invalid_example_has_an_expectation():
    assert sorted(p.name for p in INVALID) == sorted(EXPECTED)


def test_every_profile_has_a_valid_and_an_invalid_example():
    profiles = {sd["url"] for sd in resources_of_type("StructureDefinition") if sd["kind"] == "resource"}
    claimed_valid = {p for path in VALID for p in _load(path).get("meta", {}).get("profile", [])}
    claimed_invalid = {p for path in INVALID for p in _load(path).get("meta", {}).get("profile", [])}
    assert profiles <= claimed_valid
    assert profiles <= claimed_invalid


def test_examples_only_use_urls_the_ig_defines():
    defined = {r["url"] for r in resources_of_type("StructureDefinition") + resources_of_type("CodeSystem")}
    known_prefixes = (CANONICAL + "/sid/",)
    for path in VALID:
        text = path.read_text(encoding="utf-8")
        for chunk in text.split('"')[1::2]:
            if chunk.startswith(CANONICAL + "/") and not chunk.startswith(known_prefixes):
                assert chunk in defined, f"{path.name} uses {chunk}, which the IG does not define"
