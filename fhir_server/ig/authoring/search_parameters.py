"""SearchParameters over the IG's extensions, so clients can find referrals by direction, scope, consortium..."""

from __future__ import annotations

from fhir_server.ig.authoring.dsl import DATE, PUBLISHER, VERSION, sd_url
from fhir_server.ig.canonical import url


def _search_parameter(code: str, bases: list[str], type_: str, path: str, description: str, target: list[str] | None = None) -> dict:
    """``path`` is the FHIRPath after the resource type, ``{ext}``-free: built per base and joined with ``|``."""
    id_ = f"{bases[0].lower()}-{code}" if len(bases) == 1 else code
    resource = {
        "resourceType": "SearchParameter",
        "id": id_,
        "url": url("SearchParameter", id_),
        "version": VERSION,
        "name": "".join(part.capitalize() for part in id_.split("-")),
        "status": "active",
        "date": DATE,
        "publisher": PUBLISHER,
        "description": description,
        "code": code,
        "base": bases,
        "type": type_,
        "expression": " | ".join(f"{base}.{path}" for base in bases),
        "xpathUsage": "normal",
    }
    if target:
        resource["target"] = target
    return resource


def _ext(extension_id: str) -> str:
    return f"extension('{sd_url(extension_id)}')"


SEARCH_PARAMETERS: list[dict] = [
    _search_parameter("direction", ["ServiceRequest"], "token", f"{_ext('referral-direction')}.value", "转诊方向 Referral direction (up/down/lateral)"),
    _search_parameter("scope", ["ServiceRequest"], "token", f"{_ext('referral-scope')}.value", "转诊范围 Referral scope"),
    _search_parameter(
        "consortium",
        ["ServiceRequest", "Task"],
        "reference",
        f"{_ext('referral-consortium')}.value",
        "所属医联体 The consortium a referral belongs to",
        ["Organization"],
    ),
    _search_parameter(
        "reserved-resource",
        ["ServiceRequest"],
        "token",
        f"{_ext('reserved-resource')}.extension('type').value",
        "预留资源类型 Kind of reserved resource requested (outpatient slot / bed)",
    ),
    _search_parameter(
        "assessment-conclusion",
        ["ServiceRequest"],
        "token",
        f"{_ext('cross-region-assessment')}.extension('conclusion').value",
        "跨区域必要性评估结论 Conclusion of the cross-region necessity assessment",
    ),
    _search_parameter(
        "deductible-handling",
        ["Encounter"],
        "token",
        f"{_ext('deductible-continuation')}.extension('handling').value",
        "起付线处理 How the deductible applies to a referral encounter",
    ),
    _search_parameter("facility-level", ["Organization"], "token", f"{_ext('facility-level')}.value", "医疗机构级别等次 Facility level and grade"),
    _search_parameter("insured-region", ["Coverage"], "token", f"{_ext('insured-region')}.value", "参保地统筹区 Insured pooling region"),
    _search_parameter(
        "offsite-place",
        ["Coverage"],
        "token",
        f"{_ext('offsite-care-filing')}.extension('placeOfCare').value",
        "异地就医备案就医地 Place of care of an off-site care filing",
    ),
]
