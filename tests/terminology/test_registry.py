"""Expansion, membership, lookup and translation over the IG's terminology."""

from fhir_server.ig.canonical import url
from fhir_server.terminology.registry import Terminology, ig_terminology

DIRECTION = url("CodeSystem", "referral-direction")
ICD10 = url("CodeSystem", "icd-10-cn")


def test_whole_code_system_value_set_expands():
    expansion = ig_terminology().expansion(url("ValueSet", "referral-direction"))
    assert sorted(code for _, code in expansion.concepts) == ["down", "lateral", "up"]
    assert expansion.concepts[(DIRECTION, "up")] == "上转"


def test_enumerated_value_set_and_version_suffix():
    expansion = ig_terminology().expansion(url("ValueSet", "chronic-conditions") + "|0.1.0")
    assert expansion.contains(ICD10, "I10") is True
    assert expansion.contains(ICD10, "I21") is False


def test_base_value_sets_bound_as_required_are_available():
    expansion = ig_terminology().expansion("http://hl7.org/fhir/ValueSet/request-priority")
    assert expansion.contains(None, "urgent") is True
    assert expansion.contains(None, "whenever") is False


def test_unknown_system_is_undecided_not_rejected():
    terminology = Terminology(value_sets=[{"url": "http://x/vs", "compose": {"include": [{"system": "http://snomed.info/sct"}]}}])
    expansion = terminology.expansion("http://x/vs")
    assert expansion.contains("http://snomed.info/sct", "3457005") is None
    assert expansion.contains("http://loinc.org", "1-8") is False


def test_include_value_set_and_exclude():
    terminology = ig_terminology()
    vs = {
        "url": "http://x/vs",
        "compose": {
            "include": [{"valueSet": [url("ValueSet", "referral-direction")]}],
            "exclude": [{"system": DIRECTION, "concept": [{"code": "lateral"}]}],
        },
    }
    expansion = terminology.expand_resource(vs)
    assert sorted(code for _, code in expansion.concepts) == ["down", "up"]


def test_lookup_has_chinese_display_and_english_designation():
    concept = ig_terminology().lookup(url("CodeSystem", "professional-title"), "232")
    assert concept["display"] == "副主任医师"
    assert concept["designation"] == [{"language": "en", "value": "Associate chief physician"}]


def test_translate_gb_gender_to_fhir():
    [match] = ig_terminology().translate(url("CodeSystem", "gbt-2261-1"), "2")
    assert (match["code"], match["equivalence"]) == ("female", "equivalent")
    assert ig_terminology().translate(url("CodeSystem", "gbt-2261-1"), "7") == []
