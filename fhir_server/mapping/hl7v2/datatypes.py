"""HL7 v2 composite data types → FHIR data types, after the HL7 v2-to-FHIR IG datatype maps.

Each function takes a value with ``get(component, subcomponent=None)`` (a field repetition,
or a component whose sub-components act as components) and returns a FHIR dict, or None
when nothing is in it. Code tables (name use, telecom use, address use, identifier type)
are the HL7 ones the IG maps; a hospital's local codes go through ConceptMaps in the spec.
"""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

NAME_USE = {"L": "official", "D": "usual", "A": "anonymous", "N": "nickname", "M": "maiden", "C": "official", "B": "official", "R": "official"}
ADDRESS_USE = {"H": "home", "O": "work", "B": "work", "C": "temp", "M": "home", "P": "home", "BI": "billing"}
ADDRESS_TYPE = {"M": "postal", "SH": "physical"}
TELECOM_USE = {"PRN": "home", "ORN": "home", "WPN": "work", "VHN": "temp", "ASN": "temp", "EMR": "home", "PRS": "mobile", "BPN": "work"}
TELECOM_SYSTEM = {"PH": "phone", "FX": "fax", "MD": "other", "CP": "phone", "BP": "pager", "Internet": "email", "X.400": "email", "SAT": "phone", "TDD": "other", "TTY": "other"}
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def human_name(v) -> dict | None:
    """XPN (or the name part of XCN starting at ``offset``)."""
    return _name(v, 1)


def _name(v, first: int) -> dict | None:
    family = v.get(first, 1)
    given = [g for g in (v.get(first + 1), *v.get(first + 2).split()) if g]
    suffix = v.get(first + 3)
    prefix = v.get(first + 4)
    name: dict = {}
    if family and not given and _has_cjk(family):
        # Chinese HIS usually put the whole name 张三 in XPN.1: keep it whole as text and family is unknown
        name["text"] = family
    else:
        if family:
            name["family"] = family
        if given:
            name["given"] = given
        if family and given:
            name["text"] = family + "".join(given) if _has_cjk(family + "".join(given)) else " ".join(given + [family])
    if prefix:
        name["prefix"] = [prefix]
    if suffix:
        name["suffix"] = [suffix]
    use = NAME_USE.get(v.get(first + 6))
    if use and name:
        name["use"] = use
    return name or None


def xcn_name(v) -> dict | None:
    return _name(v, 2)


def address(v) -> dict | None:
    line = [x for x in (v.get(1, 1), v.get(2)) if x]
    out: dict = {}
    if line:
        out["line"] = line
    for component, key in ((3, "city"), (4, "state"), (5, "postalCode"), (6, "country"), (9, "district")):
        value = v.get(component)
        if value:
            out[key] = value
    kind = v.get(7)
    if kind in ADDRESS_USE:
        out["use"] = ADDRESS_USE[kind]
    if kind in ADDRESS_TYPE:
        out["type"] = ADDRESS_TYPE[kind]
    if out and _has_cjk("".join(out.get("line", [])) + out.get("city", "")):
        # Chinese addresses are written largest unit first; HIS often repeat province and city in the
        # street line, so the readable text only adds the units the line does not already start with
        lines = "".join(out.get("line", []))
        units = [x for x in (out.get("state", ""), out.get("city", ""), out.get("district", "")) if x and x not in lines]
        out["text"] = "".join(units) + lines
    return out or None


def contact_point(v) -> dict | None:
    value = v.get(1) or v.get(4) or v.get(12)
    if not value and (v.get(6) or v.get(7)):
        value = "".join(x for x in (v.get(5) and "+" + v.get(5), v.get(6), v.get(7)) if x)
    if not value:
        return None
    out: dict = {}
    equipment = v.get(3)
    system = TELECOM_SYSTEM.get(equipment) or ("email" if "@" in value else "phone")
    out["system"] = system
    out["value"] = value
    use = TELECOM_USE.get(v.get(2)) or ("mobile" if equipment == "CP" else None)
    if use:
        out["use"] = use
    return out


def coding(v, first: int = 1, system_of=None) -> dict | None:
    code, display, table = v.get(first), v.get(first + 1), v.get(first + 2)
    if not code and not display:
        return None
    out: dict = {}
    system = system_of(table) if system_of else ""
    if system:
        out["system"] = system
    if code:
        out["code"] = code
    if display:
        out["display"] = display
    return out


def identifier_type(code: str) -> dict:
    return {"coding": [{"system": V2_0203, "code": code}]}
