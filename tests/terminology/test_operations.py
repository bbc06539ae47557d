"""``ValueSet/$expand``, ``ValueSet/$validate-code``, ``CodeSystem/$lookup``, ``ConceptMap/$translate`` over HTTP."""

from fhir_server.ig.canonical import url

JSON = {"Content-Type": "application/fhir+json"}
SCOPE_VS = url("ValueSet", "referral-scope")
TITLE_CS = url("CodeSystem", "professional-title")
GENDER_CS = url("CodeSystem", "gbt-2261-1")


def _param(parameters: dict, name: str):
    for parameter in parameters["parameter"]:
        if parameter["name"] == name:
            return next(v for k, v in parameter.items() if k.startswith("value") or k == "part")
    return None


def test_expand_by_url(client):
    response = client.get("/ValueSet/$expand", params={"url": SCOPE_VS})
    assert response.status_code == 200
    expansion = response.json()["expansion"]
    assert expansion["total"] == 4
    assert {c["code"]: c["display"] for c in expansion["contains"]}["cross-province"] == "跨省"


def test_expand_instance_with_filter_paging_and_english(client):
    response = client.get("/ValueSet/referral-business-status/$expand", params={"count": 2, "offset": 1, "displayLanguage": "en"})
    expansion = response.json()["expansion"]
    assert expansion["total"] == 11 and len(expansion["contains"]) == 2 and expansion["offset"] == 1
    assert expansion["contains"][0]["display"] == "Received"
    filtered = client.get("/ValueSet/$expand", params={"url": SCOPE_VS, "filter": "跨省"}).json()["expansion"]
    assert [c["code"] for c in filtered["contains"]] == ["cross-province"]


def test_expand_posted_value_set(client):
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "valueSet",
                "resource": {
                    "resourceType": "ValueSet",
                    "status": "active",
                    "compose": {"include": [{"system": TITLE_CS, "concept": [{"code": "231"}, {"code": "232"}]}]},
                },
            }
        ],
    }
    expansion = client.post("/ValueSet/$expand", json=body, headers=JSON).json()["expansion"]
    assert [(c["code"], c["display"]) for c in expansion["contains"]] == [("231", "主任医师"), ("232", "副主任医师")]


def test_expand_errors(client):
    assert client.get("/ValueSet/$expand", params={"url": "http://example.org/nothing"}).status_code == 404
    assert client.get("/ValueSet/$expand").status_code == 400
    assert client.get("/ValueSet/$expand", params={"url": SCOPE_VS, "count": "-1"}).status_code == 400


def test_validate_code(client):
    ok = client.get("/ValueSet/$validate-code", params={"url": SCOPE_VS, "system": url("CodeSystem", "referral-scope"), "code": "within-city"}).json()
    assert _param(ok, "result") is True and _param(ok, "display") == "市内跨医联体"
    bad = client.get("/ValueSet/$validate-code", params={"url": SCOPE_VS, "system": url("CodeSystem", "referral-scope"), "code": "abroad"}).json()
    assert _param(bad, "result") is False and _param(bad, "message")
    wrong_display = client.get(
        "/ValueSet/referral-scope/$validate-code",
        params={"system": url("CodeSystem", "referral-scope"), "code": "within-city", "display": "省内"},
    ).json()
    assert _param(wrong_display, "result") is False
    english = client.get(
        "/ValueSet/referral-scope/$validate-code",
        params={"system": url("CodeSystem", "referral-scope"), "code": "within-city", "display": "Within the city, between consortia"},
    ).json()
    assert _param(english, "result") is True


def test_validate_codeable_concept(client):
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "url", "valueUri": url("ValueSet", "chronic-conditions")},
            {"name": "codeableConcept", "valueCodeableConcept": {"coding": [{"system": url("CodeSystem", "icd-10-cn"), "code": "E11"}]}},
        ],
    }
    assert _param(client.post("/ValueSet/$validate-code", json=body, headers=JSON).json(), "result") is True


def test_lookup(client):
    result = client.get("/CodeSystem/$lookup", params={"system": TITLE_CS, "code": "232"}).json()
    assert _param(result, "display") == "副主任医师"
    designation = _param(result, "designation")
    assert {"name": "value", "valueString": "Associate chief physician"} in designation
    assert client.get("/CodeSystem/professional-title/$lookup", params={"code": "231"}).status_code == 200
    assert client.get("/CodeSystem/$lookup", params={"system": TITLE_CS, "code": "999"}).status_code == 404


def test_translate(client):
    result = client.get("/ConceptMap/$translate", params={"system": GENDER_CS, "code": "1"}).json()
    assert _param(result, "result") is True
    match = _param(result, "match")
    assert {"name": "concept", "valueCoding": {"system": "http://hl7.org/fhir/administrative-gender", "code": "male", "display": "Male"}} in match
    instance = client.get("/ConceptMap/gbt-2261-1-to-fhir/$translate", params={"system": GENDER_CS, "code": "5"}).json()
    assert _param(instance, "result") is False
    assert client.get("/ConceptMap/$translate", params={"code": "1"}).status_code == 400
