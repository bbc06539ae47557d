"""GB/T 2260 region codes for organisations, read from the IG's region CodeSystem by address names.

Addresses carry names (甘肃省 / 定西市 / 通渭县); insurance pooling and out-of-area rules compare
codes. A code in an address extension (valueCoding/valueCodeableConcept) wins over names.
"""

from __future__ import annotations

from functools import lru_cache

from . import vocabulary as v
from .facts import Facts

GBT_2260 = v.code_system("gbt-2260")


@lru_cache(maxsize=1)
def names_to_codes() -> dict[str, str]:
    from fhir_server.ig.loader import resources_of_type

    found: dict[str, str] = {}
    for system in resources_of_type("CodeSystem"):
        if system.get("url") == GBT_2260:
            for concept in system.get("concept") or []:
                found.setdefault(concept.get("display", ""), concept["code"])
    return found


def region_code(org: dict | None) -> str | None:
    """The most specific GB/T 2260 code of an organisation's first address."""
    address = Facts.address(org)
    for extension in address.get("extension") or []:
        codes = v.codes(v.value(extension), GBT_2260)
        if codes:
            return codes[0]
    table = names_to_codes()
    for part in ("district", "city", "state"):
        name = address.get(part)
        if name in table:
            return table[name]
    return None
