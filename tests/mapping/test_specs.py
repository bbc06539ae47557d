"""Mapping specs are data: validated at load (errors name the file and the JSON path), dialects add to them."""

import textwrap

import pytest

from fhir_server.mapping.convert import Converter
from fhir_server.mapping.errors import SpecError
from fhir_server.mapping.specs import load_library
from tests.mapping.conftest import sample


def test_shipped_library(library):
    assert sorted(library.by_message_type) == ["ADT^A01", "ADT^A03", "ADT^A04", "ADT^A08", "ORM^O01", "RDE^O11",
                                               "REF^I12", "RRI^I12", "SIU^S12"]
    assert sorted(s.id for s in library.xml_specs) == ["cda_referral", "v3_patient_registration"]
    assert sorted(library.reverse) == ["ref_i12_out", "rri_i12_out"]
    assert ("QXZYY", "ADT^A04") in library.dialects


def _site(tmp_path, name: str, text: str):
    folder = tmp_path / name.split("/")[0]
    folder.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


BASE = """\
    id: zzz
    kind: hl7v2
    messageTypes: [ZZZ^Z01]
    resources:
      - key: patient
        resourceType: Patient
        segment: PID
        fields:
"""


@pytest.mark.parametrize("fields,where,words", [
    ("          - {target: name, source: PID-5, type: XYZ}\n", "$.resources[0].fields[0].type", "is not one of"),
    ("          - {target: 'name[', source: PID-5}\n", "$.resources[0].fields[0].target", "does not match"),
    ("          - {target: gender, source: PID-8, type: code, conceptMap: nowhere}\n", "$.resources[0].fields[0].conceptMap", "unknown ConceptMap"),
    ("          - {target: gender, source: PID-eight}\n", "$.resources[0].fields[0].source", "not an HL7 v2 path"),
    ("          - {target: link, reference: other}\n", "$.resources[0].fields[0].reference", "not a resource key"),
    ("          - {target: gender, source: PID-8, value: male}\n", "$.resources[0].fields[0]", "should not be valid"),
    ("          - {target: gender, source: PID-8, when: [{source: PID-8, equals: M, in: [F]}]}\n", "$.resources[0].fields[0].when[0]", ""),
])
def test_invalid_specs_name_the_file_and_json_path(tmp_path, fields, where, words):
    site = _site(tmp_path, "hl7v2/zzz.yaml", BASE + fields)
    with pytest.raises(SpecError) as error:
        load_library(site)
    message = str(error.value)
    assert str(site / "hl7v2" / "zzz.yaml") in message and f": {where}" in message and words in message


def test_a_message_type_mapped_twice_in_one_folder(tmp_path):
    _site(tmp_path, "hl7v2/a.yaml", BASE + "          - {target: gender, source: PID-8}\n")
    _site(tmp_path, "hl7v2/b.yaml", (BASE + "          - {target: gender, source: PID-8}\n").replace("id: zzz", "id: yyy"))
    with pytest.raises(SpecError, match="already mapped"):
        load_library(tmp_path)


def test_dialect_needs_senders_and_a_base(tmp_path):
    _site(tmp_path, "dialects/x.yaml", "id: x\nkind: hl7v2\nextends: ref_i12\nresources: []\n")
    with pytest.raises(SpecError, match=r"\$: 'senders' is a required property|senders"):
        load_library(tmp_path)
    _site(tmp_path, "dialects/x.yaml", "id: x\nkind: hl7v2\nextends: nothing\nsenders: [A]\n")
    with pytest.raises(SpecError, match="no spec with id 'nothing'"):
        load_library(tmp_path)


def test_shipped_dialect_for_one_sender(converter):
    result = converter.convert(sample("adt_a04_qxzyy_dialect.hl7"))
    assert result.spec_id == "adt_qxzyy" and result.warnings == []
    patient = next(e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    coverage = next(e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Coverage")
    assert patient["gender"] == "female"  # GB/T 2261.1 code 2
    assert coverage["type"]["coding"][0] == {"system": "https://fhir.referral.cn/ig/CodeSystem/insurance-type", "code": "390",
                                             "display": "城乡居民基本医疗保险"}
    # the same message from another sender uses the base spec: code 2 means nothing in HL7 table 0001
    other = converter.convert(sample("adt_a04_qxzyy_dialect.hl7").replace(b"QXZYY^", b"QXRMYY^"))
    assert other.spec_id == "adt" and any("code '2' is not in ConceptMap v2-0001" in w for w in other.warnings)
    assert any(w.startswith("segment ZPI") for w in other.warnings)


def test_site_directory_dialect(tmp_path):
    """The README's recipe: a site folder with a dialect, loaded on top of the shipped specs."""
    _site(tmp_path, "dialects/qxrmyy_ref.yaml", """\
        id: ref_i12_qxrmyy
        kind: hl7v2
        extends: ref_i12
        senders: [QXRMYY]
        resources:
          - key: encounter
            fields:
              - target: participant[]
                source: PV1-7
                fields:
                  - target: individual.display
                    template: "{_.2}{_.3}"
    """)
    converter = Converter(library=load_library(tmp_path))
    result = converter.convert(sample("ref_i12_gbk.hl7"))
    assert result.spec_id == "ref_i12_qxrmyy"
    encounter = next(e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
    assert encounter["participant"] == [{"individual": {"display": "张三"}}]
    assert not any("PV1-7" in w for w in result.warnings)
