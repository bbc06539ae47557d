"""_summary and _elements on one resource."""

from __future__ import annotations

from fhir_server.search.shaping import SUBSETTED, apply

OBSERVATION = {
    "resourceType": "Observation", "id": "o", "meta": {"versionId": "2", "tag": [{"code": "x"}]},
    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">o</div>"},
    "status": "final", "code": {"text": "weight"}, "subject": {"reference": "Patient/p"},
    "valueQuantity": {"value": 70}, "_status": {"extension": [{"url": "u", "valueString": "s"}]},
    "note": [{"text": "not a summary element"}], "interpretation": [{"text": "normal"}],
}


def test_nothing_asked_returns_the_resource_itself():
    assert apply(OBSERVATION, None, None) is OBSERVATION
    assert apply(OBSERVATION, "false", None) is OBSERVATION


def test_summary_true_keeps_summary_elements_choices_and_primitive_extensions():
    shaped = apply(OBSERVATION, "true", None)
    assert {"status", "_status", "code", "subject", "valueQuantity", "meta", "id"} <= set(shaped)
    assert "note" not in shaped and "text" not in shaped and "interpretation" not in shaped
    assert shaped["meta"]["tag"] == [{"code": "x"}, SUBSETTED]
    assert OBSERVATION["meta"]["tag"] == [{"code": "x"}]  # the input is not modified


def test_summary_text_and_data():
    text = apply(OBSERVATION, "text", None)
    assert set(text) == {"resourceType", "id", "meta", "text", "status", "_status", "code"}
    data = apply(OBSERVATION, "data", None)
    assert "text" not in data and data["note"] == OBSERVATION["note"]


def test_elements_keep_the_asked_and_mandatory_ones():
    shaped = apply(OBSERVATION, None, ["note", "subject.reference"])
    assert set(shaped) == {"resourceType", "id", "meta", "note", "subject", "status", "_status", "code"}
    assert shaped["meta"]["tag"][-1]["code"] == "SUBSETTED"


def test_subsetted_tag_is_not_repeated():
    twice = apply(apply(OBSERVATION, "true", None), "true", None)
    assert [t.get("code") for t in twice["meta"]["tag"]].count("SUBSETTED") == 1
