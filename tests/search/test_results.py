"""Result parameters over HTTP: paging links, _total, _summary, _elements, includes, handling, compartments."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

STRICT = {"Prefer": "handling=strict"}


def _ids(bundle: dict, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == mode]


def _link(bundle: dict, relation: str) -> str | None:
    return next((l["url"] for l in bundle.get("link", []) if l["relation"] == relation), None)


def _get(client, url: str, **kwargs) -> dict:
    response = client.get(url.replace("http://testserver", ""), **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def test_referral_centre_query_includes_and_sorts(loaded):
    client, _ = loaded
    bundle = _get(client, "/ServiceRequest?subject:Patient.identifier=http://example.cn/fhir/NamingSystem/"
                          "national-id|620102198001011234&_include=ServiceRequest:subject&_revinclude=Task:focus"
                          "&_sort=-authored&_count=1")
    assert _ids(bundle) == ["sr-2"]
    assert set(_ids(bundle, "include")) == {"pat-zhang", "task-2"}
    assert bundle["total"] == 2
    following = _get(client, _link(bundle, "next"))
    assert _ids(following) == ["sr-1"]
    assert set(_ids(following, "include")) == {"pat-zhang", "task-1", "task-6"}
    assert _link(following, "next") is None
    assert _ids(_get(client, _link(following, "previous"))) == ["sr-2"]


def test_include_entries_have_full_urls_and_modes(loaded):
    client, _ = loaded
    bundle = _get(client, "/Task?owner=Organization/org-a&status=requested,received&_include=Task:owner")
    assert set(_ids(bundle)) == {"task-1", "task-6"}
    assert _ids(bundle, "include") == ["org-a"]
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"http://testserver/{resource['resourceType']}/{resource['id']}"


def test_include_with_target_type_and_wildcard(loaded):
    client, _ = loaded
    assert _ids(_get(client, "/ServiceRequest?_id=sr-1&_include=ServiceRequest:performer:Organization"),
                "include") == ["org-a"]
    assert _ids(_get(client, "/ServiceRequest?_id=sr-1&_include=ServiceRequest:performer:Practitioner"),
                "include") == []
    assert set(_ids(_get(client, "/ServiceRequest?_id=sr-1&_include=ServiceRequest:*"), "include")) == \
        {"pat-zhang", "org-a", "org-b"}


def test_include_iterate_follows_included_resources(loaded):
    client, _ = loaded
    plain = _get(client, "/Task?_id=task-3&_include=Task:focus&_include=ServiceRequest:subject")
    assert set(_ids(plain, "include")) == {"sr-3"}
    iterated = _get(client, "/Task?_id=task-3&_include=Task:focus&_include:iterate=ServiceRequest:subject"
                            "&_include:iterate=Patient:organization")
    assert set(_ids(iterated, "include")) == {"sr-3", "pat-li", "org-b"}


def test_revinclude_iterate(loaded):
    client, _ = loaded
    bundle = _get(client, "/Patient?_id=pat-li&_revinclude=ServiceRequest:subject&_revinclude:iterate=Task:focus")
    assert set(_ids(bundle, "include")) == {"sr-3", "sr-5", "task-3", "task-5"}


def test_paging_walks_every_match_once_with_stable_links(loaded):
    client, resources = loaded
    expected = sorted(r["id"] for r in resources if r["resourceType"] == "Task")
    seen, url = [], "/Task?_count=2&_sort=_id"
    while url:
        bundle = _get(client, url)
        assert bundle["total"] == len(expected)
        seen += _ids(bundle)
        url = _link(bundle, "next")
    assert seen == expected


def test_next_link_survives_updates_and_inserts(loaded):
    client, _ = loaded
    first = _get(client, "/Organization?_count=1&_sort=name")
    assert _ids(first) == ["org-c"]
    next_url = _link(first, "next")
    # a new resource sorting before the cursor must not shift the next page
    created = client.put("/Organization/org-0", json={"resourceType": "Organization", "id": "org-0", "name": "Aaa"})
    assert created.status_code in (200, 201)
    try:
        assert _ids(_get(client, next_url)) == ["org-b"]
    finally:
        client.delete("/Organization/org-0")


def test_previous_link_goes_back(loaded):
    client, _ = loaded
    page1 = _get(client, "/ServiceRequest?_count=2&_sort=authored")
    page2 = _get(client, _link(page1, "next"))
    page3 = _get(client, _link(page2, "next"))
    assert _ids(page1) + _ids(page2) + _ids(page3) == ["sr-4", "sr-1", "sr-3", "sr-2", "sr-5"]
    assert _link(page3, "next") is None
    assert _ids(_get(client, _link(page3, "first"))) == ["sr-4", "sr-1"]
    back = _get(client, _link(page3, "previous"))
    assert _ids(back) == ["sr-3", "sr-2"]
    assert _ids(_get(client, _link(back, "previous"))) == ["sr-4", "sr-1"]
    assert _link(page1, "previous") is None


def test_paging_with_missing_sort_values_walks_both_ways(loaded):
    client, resources = loaded
    seen, url, pages = [], "/Patient?_count=2&_sort=-birthdate", []
    while url:
        bundle = _get(client, url)
        pages.append(bundle)
        seen += _ids(bundle)
        url = _link(bundle, "next")
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    assert sorted(seen) == sorted(r["id"] for r in patients)  # each once, none repeated
    assert seen[-1] == "pat-nobirth"  # missing values sort last
    back = _get(client, _link(pages[-1], "previous"))
    assert _ids(back) == _ids(pages[-2])


def test_self_link_repeats_applied_parameters(loaded):
    client, _ = loaded
    bundle = _get(client, "/Patient?gender=female&_count=5")
    query = parse_qs(urlsplit(_link(bundle, "self")).query)
    assert query["gender"] == ["female"] and query["_count"] == ["5"]


def test_bad_cursor_is_400(loaded):
    client, _ = loaded
    assert client.get("/Patient?_cursor=not-a-cursor").status_code == 400


@pytest.mark.parametrize("mode,has_total", [("none", False), ("estimate", True), ("accurate", True)])
def test_total_modes(loaded, mode, has_total):
    client, _ = loaded
    bundle = _get(client, f"/Patient?_total={mode}")
    assert ("total" in bundle) is has_total
    assert len(_ids(bundle)) == 4


def test_summary_count_returns_only_the_total(loaded):
    client, _ = loaded
    bundle = _get(client, "/ServiceRequest?status=active&_summary=count")
    assert bundle["total"] == 2 and "entry" not in bundle


def test_count_zero_returns_no_entries(loaded):
    client, _ = loaded
    bundle = _get(client, "/ServiceRequest?_count=0")
    assert bundle["total"] == 5 and not _ids(bundle)


def _tags(resource: dict) -> list[str]:
    return [t["code"] for t in resource.get("meta", {}).get("tag", [])]


def test_summary_true_keeps_summary_elements_and_marks_subsetted(loaded):
    client, _ = loaded
    bundle = _get(client, "/Patient?_id=pat-zhang&_summary=true")
    patient = bundle["entry"][0]["resource"]
    assert "SUBSETTED" in _tags(patient)
    assert {"name", "gender", "birthDate", "identifier"} <= set(patient)


def test_summary_data_drops_text_and_text_keeps_it(loaded):
    client, _ = loaded
    client.put("/Organization/org-t", json={"resourceType": "Organization", "id": "org-t", "name": "T",
                                            "text": {"status": "generated",
                                                     "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">T</div>"}})
    try:
        data = _get(client, "/Organization?_id=org-t&_summary=data")["entry"][0]["resource"]
        assert "text" not in data and data["name"] == "T"
        text = _get(client, "/Organization?_id=org-t&_summary=text")["entry"][0]["resource"]
        assert "text" in text and "name" not in text
    finally:
        client.delete("/Organization/org-t")


def test_elements_keeps_asked_and_mandatory_elements(loaded):
    client, _ = loaded
    bundle = _get(client, "/ServiceRequest?_id=sr-1&_elements=authoredOn")
    resource = bundle["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "authoredOn", "status", "intent", "subject"}
    assert "SUBSETTED" in _tags(resource)


def test_unknown_parameter_strict_is_400_naming_it(loaded):
    client, _ = loaded
    response = client.get("/Patient?nonsense=1", headers=STRICT)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "nonsense" in outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["expression"] == ["nonsense"]


def test_unknown_parameter_lenient_is_ignored_and_reported(loaded):
    client, _ = loaded
    for headers in ({}, {"Prefer": "handling=lenient"}):
        bundle = _get(client, "/Patient?nonsense=1&gender=male", headers=headers)
        assert _ids(bundle) == ["pat-zhang"]
        assert "nonsense" not in _link(bundle, "self")
        outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
        assert outcome and "nonsense" in outcome[0]["resource"]["issue"][0]["diagnostics"]


@pytest.mark.parametrize("query", [
    "Patient?birthdate=notadate", "Patient?birthdate=2020-13-01", "Observation?value-quantity=abc",
    "Patient?_count=many", "Patient?gender:missing=maybe", "Patient?_summary=everything",
    "Patient?_total=some", "Observation?component-code-value-quantity=8480-6",
])
def test_malformed_values_are_400_in_both_modes(loaded, query):
    client, _ = loaded
    assert client.get(f"/{query}").status_code == 400
    assert client.get(f"/{query}", headers=STRICT).status_code == 400


@pytest.mark.parametrize("query", [
    "Patient?gender:exact=male", "Patient?name:below=x", "Patient?_sort=nonsense", "Patient?_include=Patient:nothing",
    "Patient?organization.nonsense=x", "Patient?_has:Observation:nothing:code=x",
])
def test_unsupported_parameters_strict_400_lenient_ignored(loaded, query):
    client, _ = loaded
    assert client.get(f"/{query}", headers=STRICT).status_code == 400
    assert client.get(f"/{query}").status_code == 200


def test_compartment_search(loaded):
    client, _ = loaded
    assert set(_ids(_get(client, "/Patient/pat-zhang/ServiceRequest"))) == {"sr-1", "sr-2"}
    assert set(_ids(_get(client, "/Patient/pat-zhang/Observation"))) == {"obs-bp", "obs-hb"}
    assert set(_ids(_get(client, "/Patient/pat-zhang/ServiceRequest?status=completed"))) == {"sr-2"}
    assert set(_ids(_get(client, "/Patient/pat-li/Encounter"))) == {"enc-2"}
    assert set(_ids(_get(client, "/Practitioner/prac-1/Observation"))) == {"obs-hb"}
    bundle = _get(client, "/Patient/pat-zhang/ServiceRequest")
    assert _link(bundle, "self").startswith("http://testserver/Patient/pat-zhang/ServiceRequest")


def test_system_search_with_type(loaded):
    client, _ = loaded
    bundle = _get(client, "/?_type=Patient,Organization&_id=pat-li,org-a")
    assert set(_ids(bundle)) == {"pat-li", "org-a"}
    bundle = _get(client, "/?_id=task-1")
    assert _ids(bundle) == ["task-1"]
    assert client.get("/?_type=Nonsense").status_code == 400
    post = client.post("/_search", content="_id=task-2", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert _ids(post.json()) == ["task-2"]


def test_deleted_resources_leave_the_index(loaded):
    client, _ = loaded
    client.put("/Patient/tmp-1", json={"resourceType": "Patient", "id": "tmp-1", "name": [{"family": "Transient"}]})
    assert _ids(_get(client, "/Patient?name=transient")) == ["tmp-1"]
    client.put("/Patient/tmp-1", json={"resourceType": "Patient", "id": "tmp-1", "name": [{"family": "Changed"}]})
    assert _ids(_get(client, "/Patient?name=transient")) == []
    assert _ids(_get(client, "/Patient?name=changed")) == ["tmp-1"]
    client.delete("/Patient/tmp-1")
    assert _ids(_get(client, "/Patient?name=changed")) == []


def test_xml_search_bundle(loaded):
    client, _ = loaded
    response = client.get("/Patient?_id=pat-li&_format=xml")
    assert response.status_code == 200
    assert b"<Bundle" in response.content and b"pat-li" in response.content


def test_unknown_type_is_404(loaded):
    client, _ = loaded
    assert client.get("/Nonsense?x=1").status_code in (400, 404)


def test_revinclude_wildcard_finds_every_referrer(loaded):
    client, _ = loaded
    bundle = _get(client, "/Patient?_id=pat-li&_revinclude=*")
    assert set(_ids(bundle, "include")) == {"sr-3", "sr-5", "task-3", "task-5", "enc-2", "obs-wt"}


def test_pretty_json_bundle_is_indented(loaded):
    client, _ = loaded
    response = client.get("/Patient?_id=pat-li&_pretty=true")
    assert response.status_code == 200 and b'\n  "type": "searchset"' in response.content
    assert response.json()["entry"][0]["resource"]["id"] == "pat-li"


def test_ig_search_parameters_are_searchable(loaded):
    client, _ = loaded
    bundle = _get(client, "/SearchParameter?base=ServiceRequest&code=direction", headers=STRICT)
    assert [e["resource"]["url"] for e in bundle["entry"]] == [
        "https://fhir.referral.cn/ig/SearchParameter/servicerequest-direction"]
    url = bundle["entry"][0]["resource"]["url"]
    assert _get(client, f"/SearchParameter?url={url}")["total"] == 1


@pytest.mark.parametrize("query", [
    "Patient?name=' OR 1=1 --", "Patient?identifier=x') UNION SELECT rid FROM idx_resource --|y",
    "Patient?_sort=name&name=%27%3B DROP TABLE resources%3B --", "Patient?_id=\" OR \"\"=\"",
])
def test_values_are_data_not_sql(loaded, query):
    client, _ = loaded
    response = client.get(f"/{query}")
    assert response.status_code == 200 and _ids(response.json()) == []
    assert _ids(_get(client, "/Patient?_id=pat-li")) == ["pat-li"]


def test_empty_values_are_ignored_when_lenient_and_rejected_when_strict(loaded):
    client, _ = loaded
    bundle = _get(client, "/Patient?name=&gender=female")
    assert set(_ids(bundle)) == {"pat-li", "pat-erica"}
    assert client.get("/Patient?name=&gender=female", headers=STRICT).status_code == 400


def test_system_search_sorts_each_type_by_its_own_parameter(loaded):
    client, _ = loaded
    bundle = _get(client, "/?_type=Patient,Practitioner&_sort=family", headers=STRICT)
    assert _ids(bundle) == ["pat-erica", "pat-li", "pat-nobirth", "pat-zhang", "prac-1"]


def test_search_inside_a_batch_bundle(loaded):
    client, _ = loaded
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient?gender=female&_sort=_id"}},
        {"request": {"method": "GET", "url": "ServiceRequest?subject:Patient.identifier=620102199002022345"
                                             "&_include=ServiceRequest:subject"}},
    ]}
    response = client.post("/", json=batch)
    assert response.status_code == 200, response.text
    first, second = (e["resource"] for e in response.json()["entry"])
    assert first["type"] == "searchset" and _ids(first) == ["pat-erica", "pat-li"]
    assert set(_ids(second)) == {"sr-3", "sr-5"} and _ids(second, "include") == ["pat-li"]
