"""The committed IG in profiles/ is exactly what its source generates (no hand edits, no drift)."""

from fhir_server.ig.authoring.generate import generate
from fhir_server.ig.canonical import CANONICAL, IG_DIR


def test_committed_files_match_the_generator():
    files = generate()
    assert len(files) > 40
    for path, text in files.items():
        assert path.exists(), f"{path.name} is generated but not committed"
        assert path.read_text(encoding="utf-8") == text, f"{path.name} differs from the generator's output"
    committed = set(IG_DIR.glob("*-*.json"))
    assert committed <= set(files), f"stale files: {committed - set(files)}"


def test_every_artefact_lives_under_the_one_canonical_base():
    for path, text in generate().items():
        if path.parent == IG_DIR and '"url"' in text:
            import json

            resource = json.loads(text)
            assert resource["url"].startswith(CANONICAL + "/"), path.name
