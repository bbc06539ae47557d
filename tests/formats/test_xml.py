"""FHIR XML <-> JSON: spec examples round-trip exactly, XML rules, hostile and malformed input."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from fhir_server.errors import FhirError
from fhir_server.formats import json as fhir_json
from fhir_server.formats import type_metadata as meta
from fhir_server.formats.xml import FHIR_NS, resource_to_xml, xml_to_resource

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "xml"
EXAMPLES = sorted(FIXTURES.glob("*.json"))
F = "{" + FHIR_NS + "}"


def load(name: str) -> dict:
    return fhir_json.loads((FIXTURES / name).read_bytes())


def structure_error(data: bytes) -> FhirError:
    with pytest.raises(FhirError) as caught:
        xml_to_resource(data)
    assert caught.value.status == 400
    assert caught.value.issues[0]["code"] == "structure"
    return caught.value


def message(error: FhirError) -> str:
    return error.issues[0]["diagnostics"]


def fhir_xml(body: str, root: str = "Patient") -> bytes:
    return f'<{root} xmlns="http://hl7.org/fhir">{body}</{root}>'.encode()


# ------------------------------------------------------------------ round trip of spec examples


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
def test_spec_example_round_trips_exactly(path, pretty):
    original = fhir_json.loads(path.read_bytes())
    back = xml_to_resource(resource_to_xml(original, pretty=pretty))
    assert back == original
    # Same text too: decimals as written (1.0 vs 1.00), key order = element order.
    assert fhir_json.dumps(back) == fhir_json.dumps(original)


def test_fixture_set_covers_the_required_examples():
    names = {p.stem for p in EXAMPLES}
    assert {"Patient-example", "Practitioner-example", "Encounter-example", "CarePlan-example",
            "Coverage-9876B1", "Task-example1", "ServiceRequest-example"} <= names
    assert any(n.startswith("Bundle-") for n in names)


def test_decimals_keep_their_written_text():
    observation = load("Observation-decimal.json")
    back = xml_to_resource(resource_to_xml(observation))
    written = [c["valueQuantity"]["value"] for c in back["component"]]
    assert all(isinstance(v, Decimal) for v in written)
    assert [str(v) for v in written] == [str(c["valueQuantity"]["value"]) for c in observation["component"]]
    assert "1.00" in [str(v) for v in written]


# ------------------------------------------------------------------ XML shape


def test_patient_xml_shape():
    root = etree.fromstring(resource_to_xml(load("Patient-example.json")))
    assert root.tag == F + "Patient"
    children = [child.tag[len(F):] if child.tag.startswith(F) else child.tag for child in root]
    assert children[:3] == ["id", "text", "identifier"]
    assert root.find(F + "id").get("value") == "example"
    div = root.find(F + "text").find("{http://www.w3.org/1999/xhtml}div")
    assert div is not None and div.find(".//{http://www.w3.org/1999/xhtml}table") is not None
    birth = root.find(F + "birthDate")
    assert birth.get("value") == "1974-12-25"
    extension = birth.find(F + "extension")
    assert extension.get("url") == "http://hl7.org/fhir/StructureDefinition/patient-birthTime"
    assert extension.find(F + "valueDateTime").get("value") == "1974-12-25T14:35:45-05:00"
    assert [g.get("value") for g in root.find(F + "name").findall(F + "given")] == ["Peter", "James"]
    assert root.find(F + "active").get("value") == "true"


def test_xml_element_order_follows_the_definition_not_the_json_key_order():
    patient = load("Patient-example.json")
    shuffled = dict(reversed(list(patient.items())))
    shuffled["name"] = [dict(reversed(list(n.items()))) for n in patient["name"]]
    assert resource_to_xml(shuffled) == resource_to_xml(patient)


def test_element_ids_are_attributes_resource_id_is_an_element():
    resource = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"id": "n1", "family": "Li", "_family": {"id": "f1"}}],
    }
    root = etree.fromstring(resource_to_xml(resource))
    assert root.get("id") is None and root.find(F + "id").get("value") == "p1"
    name = root.find(F + "name")
    assert name.get("id") == "n1"
    assert name.find(F + "id") is None
    assert name.find(F + "family").attrib == {"id": "f1", "value": "Li"}
    assert xml_to_resource(resource_to_xml(resource)) == resource


def test_contained_and_entry_resources_are_wrapped():
    root = etree.fromstring(resource_to_xml(load("Observation-1minute-apgar-score.json")))
    contained = root.find(F + "contained")
    assert len(contained) == 1 and contained[0].tag == F + "Patient"
    bundle = etree.fromstring(resource_to_xml(load("Bundle-bundle-transaction.json")))
    entry_resource = bundle.find(F + "entry").find(F + "resource")
    assert entry_resource[0].tag.startswith(F)


def test_parameters_resource_round_trip():
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "return", "resource": {"resourceType": "Patient", "id": "x", "active": True}},
            {"name": "count", "valueInteger": 3},
            {"name": "ratio", "valueDecimal": Decimal("0.50")},
        ],
    }
    xml = resource_to_xml(parameters)
    assert b'<resource><Patient><id value="x"/>' in xml
    back = xml_to_resource(xml)
    assert back == parameters
    assert str(back["parameter"][2]["valueDecimal"]) == "0.50"
    assert back["parameter"][1]["valueInteger"] == 3 and type(back["parameter"][1]["valueInteger"]) is int


def test_repeating_primitive_with_extension_only_positions_aligns_nulls():
    extension = [{"url": "http://example.org/x", "valueCode": "VV"}]
    resource = {
        "resourceType": "Patient",
        "name": [{"given": ["A", None, "C"], "_given": [None, {"extension": extension}, {"id": "g3"}]}],
    }
    xml = resource_to_xml(resource)
    name = etree.fromstring(xml).find(F + "name")
    given = name.findall(F + "given")
    assert [g.get("value") for g in given] == ["A", None, "C"]
    assert given[1].find(F + "extension").get("url") == "http://example.org/x"
    assert given[2].get("id") == "g3"
    assert xml_to_resource(xml) == resource


def test_repeating_primitive_with_only_extensions_has_no_value_array():
    extension = [{"url": "http://example.org/x", "valueBoolean": True}]
    with_nulls = {"resourceType": "Patient", "name": [{"given": [None], "_given": [{"extension": extension}]}]}
    without = {"resourceType": "Patient", "name": [{"_given": [{"extension": extension}]}]}
    assert resource_to_xml(with_nulls) == resource_to_xml(without)
    assert xml_to_resource(resource_to_xml(with_nulls)) == without


# ------------------------------------------------------------------ reading hand-written XML

HANDWRITTEN = b"""<?xml version="1.0" encoding="UTF-8"?>
<?xml-stylesheet type="text/xsl" href="fhir.xsl"?>
<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="http://hl7.org/fhir ../../schema/patient.xsd">
  <!-- a comment the JSON has no place for -->
  <id value="zhang-san"/>
  <meta><lastUpdated value="2024-01-02T03:04:05.678+08:00"/></meta>
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml"><p>\xe5\xbc\xa0\xe4\xb8\x89 &amp; <b>co</b><br/></p></div>
  </text>
  <extension url="http://example.org/ethnicity">
    <valueCoding>
      <system value="urn:oid:2.16.156.10011.2.3.3.3"/>
      <code value="01"/>
    </valueCoding>
  </extension>
  <identifier id="id-card">
    <system value="urn:oid:2.16.156.10011.1.4"/>
    <value value="110101199003071234"/>
  </identifier>
  <active value="true"/>
  <name>
    <text value="\xe5\xbc\xa0\xe4\xb8\x89"/>
    <given value="San"/>
    <given>
      <extension url="http://hl7.org/fhir/StructureDefinition/data-absent-reason">
        <valueCode value="unknown"/>
      </extension>
    </given>
  </name>
  <gender value="male"/>
  <birthDate id="bd" value="1990-03-07"/>
  <multipleBirthInteger value="2"/>
</Patient>
"""


def test_reads_handwritten_xml():
    patient = xml_to_resource(HANDWRITTEN)
    assert patient == {
        "resourceType": "Patient",
        "id": "zhang-san",
        "meta": {"lastUpdated": "2024-01-02T03:04:05.678+08:00"},
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>\u5f20\u4e09 &amp; <b>co</b><br/></p></div>',
        },
        "extension": [
            {
                "url": "http://example.org/ethnicity",
                "valueCoding": {"system": "urn:oid:2.16.156.10011.2.3.3.3", "code": "01"},
            }
        ],
        "identifier": [{"id": "id-card", "system": "urn:oid:2.16.156.10011.1.4", "value": "110101199003071234"}],
        "active": True,
        "name": [
            {
                "text": "\u5f20\u4e09",
                "given": ["San", None],
                "_given": [
                    None,
                    {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                    "valueCode": "unknown"}]},
                ],
            }
        ],
        "gender": "male",
        "birthDate": "1990-03-07",
        "_birthDate": {"id": "bd"},
        "multipleBirthInteger": 2,
    }
    assert list(patient) == list(patient.keys())  # dict order = element order
    assert list(patient)[:4] == ["resourceType", "id", "meta", "text"]


def test_utf8_byte_order_mark_and_declaration_are_accepted():
    data = b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>' + fhir_xml('<id value="x"/>')
    assert xml_to_resource(data) == {"resourceType": "Patient", "id": "x"}


def test_json_keys_follow_element_order_even_when_xml_is_out_of_order():
    patient = xml_to_resource(fhir_xml('<gender value="female"/><active value="false"/><id value="a"/>'))
    assert list(patient) == ["resourceType", "id", "active", "gender"]


def test_primitive_json_types():
    observation = xml_to_resource(
        fhir_xml(
            '<status value="final"/><code><text value="t"/></code>'
            '<valueQuantity><value value="-0.010"/><unit value="mg"/></valueQuantity>'
            '<component><code><text value="c"/></code><valueInteger value="-7"/></component>'
            '<component><code><text value="b"/></code><valueBoolean value="false"/></component>',
            root="Observation",
        )
    )
    value = observation["valueQuantity"]["value"]
    assert isinstance(value, Decimal) and str(value) == "-0.010"
    assert observation["component"][0]["valueInteger"] == -7
    assert observation["component"][1]["valueBoolean"] is False


# ------------------------------------------------------------------ type metadata


def test_type_metadata_from_the_models():
    patient = meta.resource_info("Patient")
    assert list(patient.elements)[:8] == [
        "id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension",
    ]
    assert patient.elements["name"].repeats and patient.elements["name"].kind == meta.COMPLEX
    assert patient.elements["birthDate"].kind == meta.PRIMITIVE and not patient.elements["birthDate"].repeats
    assert patient.elements["active"].json_type == meta.BOOLEAN
    assert patient.elements["multipleBirthInteger"].json_type == meta.INTEGER
    assert patient.elements["deceasedBoolean"].choice_group == "deceased"
    assert patient.elements["contained"].kind == meta.RESOURCE and patient.elements["contained"].repeats
    assert patient.attributes == frozenset()
    quantity = meta.resource_info("Observation").elements["valueQuantity"].type_info
    assert quantity.elements["value"].json_type == meta.DECIMAL
    assert quantity.attributes == {"id"}
    narrative = patient.elements["text"].type_info
    assert narrative.elements["div"].kind == meta.XHTML
    extension = patient.elements["extension"].type_info
    assert extension.attributes == {"id", "url"}
    assert meta.resource_info("NotAType") is None


# ------------------------------------------------------------------ malformed and invalid XML


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"<Patient xmlns='http://hl7.org/fhir'><id value='x'/>", "Malformed XML"),
        (b"", "Malformed XML"),
        (b"not xml at all", "Malformed XML"),
        (b"<Patient xmlns='http://hl7.org/fhir'><id value='x'></Patient>", "Malformed XML"),
        (b"<Patient><id value='x'/></Patient>", "namespace"),
        (b"<Patient xmlns='http://hl7.org/fhir/'><id value='x'/></Patient>", "namespace"),
        (fhir_xml("", root="Unicorn"), "Unknown resource type 'Unicorn'"),
        (fhir_xml('<colour value="red"/>'), "Unknown element 'colour' in Patient"),
        (fhir_xml('<name><nickname value="x"/></name>'), "Unknown element 'nickname' in Patient.name"),
        (fhir_xml('<birthDate value="2000"><x value="1"/></birthDate>'), "Unknown element 'x' in Patient.birthDate"),
        (fhir_xml("<active>true</active>"), "Text content is not allowed in Patient.active"),
        (fhir_xml('<gender value="male"/><gender value="female"/>'), "'gender' occurs more than once"),
        (fhir_xml('<deceasedBoolean value="true"/><deceasedDateTime value="2020"/>'), "Only one of Patient.deceased[x]"),
        (fhir_xml('<active value="yes"/>'), "Invalid boolean 'yes' in Patient.active"),
        (fhir_xml('<multipleBirthInteger value="1.5"/>'), "Invalid integer '1.5'"),
        (fhir_xml('<gender value=""/>'), "Empty value in Patient.gender"),
        (fhir_xml("<gender/>"), "neither a value nor extensions"),
        (fhir_xml("<name/>"), "Element Patient.name[0] is empty"),
        (fhir_xml('<active value="true" colour="red"/>'), "Unexpected attribute 'colour'"),
        (fhir_xml('<name><id value="n"/><family value="Li"/></name>'), "Unknown element 'id' in Patient.name"),
        (fhir_xml('<text><status value="generated"/><div><p>x</p></div></text>'), "XHTML"),
        (fhir_xml('<contained><Patient><id value="a"/></Patient><Patient><id value="b"/></Patient></contained>'),
         "exactly one resource"),
        (fhir_xml('<code value="x"/>', root="Basic"), "Unexpected attribute 'value' on Basic.code"),
        (b"<?xml version='1.0' encoding='ISO-8859-1'?><Patient xmlns='http://hl7.org/fhir'/>", "UTF-8"),
        ("<Patient xmlns='http://hl7.org/fhir'><id value='x'/></Patient>".encode("utf-16"), "UTF-8"),
        (b"<Patient xmlns='http://hl7.org/fhir'><name><text value='\xff\xfe'/></name></Patient>", "UTF-8"),
    ],
)
def test_malformed_or_invalid_xml_is_a_structure_error(data, expected):
    assert expected in message(structure_error(data))


def test_decimal_must_be_a_fhir_decimal():
    data = fhir_xml(
        '<status value="final"/><code><text value="t"/></code><valueQuantity><value value="1,5"/></valueQuantity>',
        root="Observation",
    )
    assert "Invalid decimal '1,5' in Observation.valueQuantity.value" in message(structure_error(data))


def test_error_names_the_element_path():
    error = structure_error(fhir_xml('<contact><name><nickname value="x"/></name></contact>'))
    assert error.issues[0]["expression"] == ["Patient.contact[0].name.nickname"]
    error = structure_error(
        fhir_xml('<entry><resource><Patient><colour value="x"/></Patient></resource></entry>', root="Bundle")
    )
    assert error.issues[0]["expression"] == ["Bundle.entry[0].resource.colour"]


def test_size_limit():
    data = fhir_xml('<id value="x"/>')
    with pytest.raises(FhirError) as caught:
        xml_to_resource(data, max_bytes=10)
    assert caught.value.status == 413
    assert xml_to_resource(data, max_bytes=None) == {"resourceType": "Patient", "id": "x"}


# ------------------------------------------------------------------ hostile XML

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&lol9;"/></name></Patient>
"""

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&xxe;"/></name>
<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">&xxe;</div></text></Patient>
"""

XXE_PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Patient SYSTEM "file:///etc/passwd">
<Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>
"""

LOWERCASE_DOCTYPE_IN_UTF8_BOM = b"\xef\xbb\xbf<!doctype Patient><Patient xmlns='http://hl7.org/fhir'/>"


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, XXE_FILE, XXE_PARAMETER_ENTITY, EXTERNAL_DTD, LOWERCASE_DOCTYPE_IN_UTF8_BOM],
    ids=["billion-laughs", "xxe-file", "xxe-parameter-entity", "external-dtd", "doctype-after-bom"],
)
def test_doctype_and_entities_are_refused_never_expanded(data):
    error = structure_error(data)
    text = message(error)
    assert "DOCTYPE" in text
    assert "root:" not in text and "lollollol" not in text


def test_xxe_in_a_utf16_document_is_refused():
    assert "UTF-8" in message(structure_error(XXE_FILE.decode().encode("utf-16")))


def test_undeclared_entity_is_malformed():
    text = message(structure_error(fhir_xml('<name><family value="&xxe;"/></name>')))
    assert "Malformed XML" in text


def test_narrative_with_doctype_is_refused_on_output():
    resource = {
        "resourceType": "Patient",
        "text": {
            "status": "generated",
            "div": '<!DOCTYPE div [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            '<div xmlns="http://www.w3.org/1999/xhtml">&x;</div>',
        },
    }
    with pytest.raises(FhirError) as caught:
        resource_to_xml(resource)
    assert caught.value.status == 400 and "Patient.text.div" in message(caught.value)


# ------------------------------------------------------------------ invalid JSON on output


@pytest.mark.parametrize(
    "resource, expected",
    [
        ({"resourceType": "Patient", "colour": "red"}, "Unknown property 'colour' in Patient"),
        ({"resourceType": "Unicorn"}, "Unknown resource type 'Unicorn'"),
        ({"id": "x"}, "has no resourceType"),
        ({"resourceType": "Patient", "active": "yes"}, "Patient.active has a value of the wrong JSON type"),
        ({"resourceType": "Patient", "name": {"family": "Li"}}, "Patient.name must be an array"),
        ({"resourceType": "Patient", "_name": {"id": "x"}}, "Unknown property '_name'"),
        ({"resourceType": "Patient", "name": [{"_id": {"id": "x"}}]}, "Unknown property '_id' in Patient.name[0]"),
        ({"resourceType": "Patient", "name": [{"given": ["a"], "_given": [None, None]}]}, "same length"),
        ({"resourceType": "Patient", "text": {"status": "generated", "div": "<div>unclosed"}}, "not valid XHTML"),
        ({"resourceType": "Patient", "text": {"status": "generated", "div": "<p xmlns='http://www.w3.org/1999/xhtml'/>"}},
         "not valid XHTML"),
    ],
)
def test_invalid_json_resource_is_refused_on_output(resource, expected):
    with pytest.raises(FhirError) as caught:
        resource_to_xml(resource)
    assert caught.value.status == 400
    assert expected in message(caught.value)


def test_whitespace_and_markup_characters_in_values_survive():
    resource = {"resourceType": "Basic", "code": {"text": 'a\r\nb\tc  d "q" <&> \u5f20'}}
    assert xml_to_resource(resource_to_xml(resource)) == resource
    assert xml_to_resource(resource_to_xml(resource, pretty=True)) == resource


def test_control_characters_are_refused_on_output():
    with pytest.raises(FhirError) as caught:
        resource_to_xml({"resourceType": "Patient", "name": [{"family": "Li\x01"}]})
    assert caught.value.status == 400 and "Patient.name[0].family" in message(caught.value)


def test_deep_nesting_is_a_structure_error_both_ways():
    extension: dict = {"url": "http://example.org/x", "valueString": "leaf"}
    for _ in range(2000):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    with pytest.raises(FhirError) as caught:
        resource_to_xml({"resourceType": "Basic", "code": {"text": "x"}, "extension": [extension]})
    assert "nested too deeply" in message(caught.value)
    deep = '<extension url="u">' * 5000 + '<valueString value="v"/>' + "</extension>" * 5000
    assert "Malformed XML" in message(structure_error(fhir_xml(deep)))


def test_narrative_carriage_returns_and_attribute_line_breaks_survive():
    div = '<div xmlns="http://www.w3.org/1999/xhtml">a\r\nb<span title="one\ntwo">"q" &amp; &lt;</span></div>'
    resource = {"resourceType": "Basic", "code": {"text": "x"}, "text": {"status": "generated", "div": div}}
    xml = resource_to_xml(resource)
    assert b"&#13;" in xml
    back = xml_to_resource(xml)
    assert back["text"]["div"] == div.replace('"q"', "&quot;q&quot;")
