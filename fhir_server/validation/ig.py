"""The validator for the committed IG, built once per process."""

from __future__ import annotations

from functools import lru_cache

from fhir_server.ig.canonical import CANONICAL
from fhir_server.ig.loader import resources_of_type
from fhir_server.terminology.registry import ig_terminology
from fhir_server.validation.profile import ProfileValidator


@lru_cache(maxsize=1)
def ig_validator() -> ProfileValidator:
    validator = ProfileValidator(resources_of_type("StructureDefinition"), ig_terminology(), CANONICAL)
    validator.compile_all()
    return validator
