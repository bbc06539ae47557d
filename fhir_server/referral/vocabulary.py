"""The IG's URLs and codes the referral workflow and rules read, derived from the one canonical base.

Extensions and code systems published by the IG in ``profiles/`` are named here once. The few the
IG does not (yet) define — a justification text on a referral, a referral-reserved Slot flag —
are declared here under the same canonical base and documented in the rule-set README.
"""

from __future__ import annotations

from fhir_server.ig.canonical import CANONICAL, url


def ext(name: str) -> str:
    return url("StructureDefinition", name)


def code_system(name: str) -> str:
    return url("CodeSystem", name)


# extensions defined by the IG (profiles/StructureDefinition-*.json)
DIRECTION = ext("referral-direction")
SCOPE = ext("referral-scope")
CONSENT = ext("consent-reference")
CONSENT_EXEMPTION = ext("consent-exemption")
ASSESSMENT = ext("cross-region-assessment")
RESERVED_RESOURCE = ext("reserved-resource")
CONSORTIUM = ext("referral-consortium")
FACILITY_LEVEL = ext("facility-level")
INSURED_REGION = ext("insured-region")
OFFSITE_FILING = ext("offsite-care-filing")
DEDUCTIBLE = ext("deductible-continuation")

# extensions this server adds (not in the IG's profiles yet). They live beside the IG's base, not under it,
# so the IG validator treats them as foreign extensions rather than unknown IG ones.
SERVER_BASE = CANONICAL.rsplit("/", 1)[0] + "/server"
#: free-text justification: why a lateral referral, why not the consortium's lead hospital
JUSTIFICATION = f"{SERVER_BASE}/StructureDefinition/referral-justification"
#: on a Slot: reserved for referrals from the lead hospital's member base institutions (valueBoolean)
RESERVED_SLOT = f"{SERVER_BASE}/StructureDefinition/referral-reserved-slot"
#: on a Task/$overdue entry: the response deadline the Task missed
RESPONSE_DEADLINE = f"{SERVER_BASE}/StructureDefinition/response-deadline"

# code systems defined by the IG
CS_DIRECTION = code_system("referral-direction")
CS_SCOPE = code_system("referral-scope")
CS_BUSINESS_STATUS = code_system("referral-business-status")
CS_FACILITY_LEVEL = code_system("facility-level")
CS_INSTITUTION_TYPE = code_system("institution-type")
CS_PROFESSIONAL_TITLE = code_system("professional-title")
CS_CONSORTIUM_ROLE = code_system("consortium-role")
CS_DEDUCTIBLE = code_system("deductible-handling")
CS_CARE_PLAN_CATEGORY = code_system("care-plan-category")
CS_ICD10 = code_system("icd-10-cn")

#: the IG's business-status displays (zh, en), used when the server writes a businessStatus itself
BUSINESS_STATUS = {
    "submitted": ("已提交", "Submitted"), "received": ("已接收", "Received"),
    "under-review": ("审核中", "Under review"), "accepted": ("已接受", "Accepted"),
    "rejected": ("已拒绝", "Rejected"), "returned": ("已退回补充", "Returned for information"),
    "booked": ("已预约", "Booked"), "arrived": ("已到诊", "Patient arrived"),
    "completed": ("已完成", "Completed"), "cancelled": ("已撤销", "Cancelled"), "expired": ("已超时", "Expired"),
}

SCOPE_ORDER = ("within-consortium", "within-city", "within-province", "cross-province")

REFERRAL_TASK_PROFILE = url("StructureDefinition", "referral-task")
REFERRAL_REQUEST_PROFILE = url("StructureDefinition", "referral-request")
SNOMED_REFERRAL = ("http://snomed.info/sct", "3457005")


def extension(resource: dict, ext_url: str) -> dict | None:
    for item in resource.get("extension") or []:
        if isinstance(item, dict) and item.get("url") == ext_url:
            return item
    return None


def extensions(resource: dict, ext_url: str) -> list[dict]:
    return [item for item in resource.get("extension") or [] if isinstance(item, dict) and item.get("url") == ext_url]


def sub_value(ext_item: dict | None, name: str):
    """The value[x] of a complex extension's sub-extension ``name``."""
    for item in (ext_item or {}).get("extension") or []:
        if isinstance(item, dict) and item.get("url") == name:
            return value(item)
    return None


def value(ext_item: dict | None):
    for key, item in (ext_item or {}).items():
        if key.startswith("value"):
            return item
    return None


def codes(concept: dict | None, system: str | None = None) -> list[str]:
    """Codes of a CodeableConcept or Coding (optionally of one system)."""
    if not isinstance(concept, dict):
        return []
    codings = concept.get("coding") if "coding" in concept else [concept]
    return [c.get("code") for c in codings or [] if isinstance(c, dict) and c.get("code")
            and (system is None or c.get("system") == system)]


def is_referral_request(resource: dict) -> bool:
    """A ServiceRequest that is a referral: claims the profile, is in the referral category or has a direction."""
    if REFERRAL_REQUEST_PROFILE in ((resource.get("meta") or {}).get("profile") or []):
        return True
    if extension(resource, DIRECTION) is not None:
        return True
    for category in resource.get("category") or []:
        for coding in (category or {}).get("coding") or []:
            if (coding.get("system"), coding.get("code")) == SNOMED_REFERRAL:
                return True
    return False
