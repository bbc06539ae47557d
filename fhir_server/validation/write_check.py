"""Profile validation on write: a resource claiming IG profiles in ``meta.profile`` must conform (422).

With ``Settings.require_profiles`` the IG's global profiles (``ImplementationGuide.global``: the referral
ServiceRequest and Task) are enforced on every resource of their type, claimed or not.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from fhir_server.config import Settings
from fhir_server.ig.loader import resources_of_type
from fhir_server.validation.ig import ig_validator


@lru_cache(maxsize=1)
def global_profiles() -> dict[str, tuple[str, ...]]:
    """Resource type → the IG profiles every instance of it must meet when profiles are required."""
    result: dict[str, list[str]] = {}
    for guide in resources_of_type("ImplementationGuide"):
        for entry in guide.get("global", []):
            result.setdefault(entry["type"], []).append(entry["profile"])
    return {k: tuple(v) for k, v in result.items()}


def profiles_to_check(resource: dict, settings: Settings | None) -> list[str]:
    """The IG profiles ``resource`` is validated against: those it claims, plus the required ones."""
    validator = ig_validator()
    claimed = [p for p in (resource.get("meta") or {}).get("profile", []) if p.startswith(validator.canonical_prefix)]
    if settings is not None and settings.require_profiles:
        for required in global_profiles().get(resource.get("resourceType", ""), ()):
            if required not in claimed:
                claimed.append(required)
    return claimed


def profile_write_check(settings: Settings) -> Callable:
    validator = ig_validator()

    def check(session, resource_type: str, resource: dict, previous: dict | None) -> list[dict]:
        profiles = profiles_to_check(resource, settings)
        if not profiles:
            return []
        return validator.validate(resource, profiles)

    return check
