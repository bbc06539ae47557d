"""``fhir-server ig build`` writes a FHIR NPM package that reads back as one."""

import json
import tarfile

from fhir_server.cli import main
from fhir_server.ig.canonical import PACKAGE_ID, VERSION
from fhir_server.ig.loader import example_paths, ig_resources
from fhir_server.ig.package import build_package


def _read(path):
    with tarfile.open(path, "r:gz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def test_cli_builds_the_package(tmp_path, capsys):
    assert main(["ig", "build", "--out", str(tmp_path)]) == 0
    target = tmp_path / f"{PACKAGE_ID}-{VERSION}.tgz"
    assert capsys.readouterr().out.strip() == str(target)
    assert target.exists()


def test_package_reads_back(tmp_path):
    files = _read(build_package(tmp_path))
    manifest = json.loads(files["package/package.json"])
    assert manifest["name"] == PACKAGE_ID and manifest["version"] == VERSION
    assert manifest["fhirVersions"] == ["4.0.1"]
    assert manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1"}

    index = json.loads(files["package/.index.json"])
    assert index["index-version"] == 1
    listed = {entry["filename"]: entry for entry in index["files"]}
    resources = [name for name in files if name.count("/") == 1 and not name.split("/")[1].startswith((".", "package.json"))]
    assert sorted(f"package/{name}" for name in listed) == sorted(resources)
    for name, entry in listed.items():
        resource = json.loads(files[f"package/{name}"])
        assert (resource["resourceType"], resource["id"], resource.get("url")) == (entry["resourceType"], entry["id"], entry.get("url"))
    assert len(listed) == len(ig_resources())
    kinds = {entry["resourceType"] for entry in listed.values()}
    assert {"ImplementationGuide", "StructureDefinition", "CodeSystem", "ValueSet", "SearchParameter", "ConceptMap"} <= kinds

    example_index = json.loads(files["package/example/.index.json"])
    assert len(example_index["files"]) == len(example_paths())
    for entry in example_index["files"]:
        assert json.loads(files[f"package/example/{entry['filename']}"])["id"] == entry["id"]
    assert not any("invalid" in name for name in files), "invalid examples stay out of the package"


def test_packaged_resources_pass_the_resource_models(tmp_path):
    from fhir_server.validation.structural import structural_issues

    files = _read(build_package(tmp_path))
    for name, content in files.items():
        if name.endswith(".json") and not name.rsplit("/", 1)[-1].startswith((".", "package.json")):
            assert structural_issues(json.loads(content)) == [], name


def test_build_is_reproducible(tmp_path):
    first = build_package(tmp_path / "a").read_bytes()
    second = build_package(tmp_path / "b").read_bytes()
    assert _read(tmp_path / "a" / f"{PACKAGE_ID}-{VERSION}.tgz") == _read(tmp_path / "b" / f"{PACKAGE_ID}-{VERSION}.tgz")
    assert len(first) == len(second)
