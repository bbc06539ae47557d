"""The committed IG in profiles/ is exactly what its source generates (no hand edits, no drift)."""

import json

import pytest

from fhir_server.ig.authoring.generate import generate
from fhir_server.ig.canonical import CANONICAL, IG_DIR


@pytest.fixture(scope="module")
def generated():
    return generate()


def test_committed_files_match_the_generator(generated):
    assert len(generated) > 40
    for path, text in generated.items():
        assert path.exists(), f"{path.name} is generated but not committed"
        assert path.read_text(encoding="utf-8") == text, f"{path.name} differs from the generator's output"
    committed = set(IG_DIR.glob("*-*.json"))
    assert committed <= set(generated), f"stale files: {committed - set(generated)}"


def test_every_artefact_lives_under_the_one_canonical_base(generated):
    for path, text in generated.items():
        if path.parent == IG_DIR:
            resource = json.loads(text)
            assert resource["url"].startswith(CANONICAL + "/"), path.name
