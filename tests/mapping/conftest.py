"""Fixtures for the mapping tests: one compiled mapping library, a repository holding the two
member hospitals of the sample consortium (the referral rules need their facility levels)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fhir_server.app import build_repository
from fhir_server.config import Settings
from fhir_server.mapping.convert import Converter
from fhir_server.mapping.specs import load_library

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "mappings" / "samples"
FIXTURES = ROOT / "tests" / "fixtures" / "mapping"


@pytest.fixture(scope="session")
def library():
    return load_library()


@pytest.fixture
def converter(library):
    return Converter(library=library)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def seed_members(repository) -> None:
    repository.process_bundle(json.loads((FIXTURES / "member-organizations.json").read_text(encoding="utf-8")))


@pytest.fixture
def repository(tmp_path):
    repository = build_repository(Settings(data_dir=tmp_path))
    seed_members(repository)
    yield repository
    repository.store.close()


@pytest.fixture(autouse=True)
def _quiet_mapping_log(caplog):
    caplog.set_level(logging.ERROR, logger="fhir_server.mapping")
