"""What the rules need to know about a referral's participants, read inside the write session.

Organisations, practitioner roles, consortium memberships and the request a Task points at
are read through the same session the write runs in, so a transaction Bundle's own entries
count and nothing outside the transaction is assumed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fhir_server.formats import json as fjson

from . import vocabulary as v

#: most resources an internal query looks at (reports page through more)
QUERY_LIMIT = 5000


def local_reference(reference: object) -> str | None:
    """``Type/id`` of a literal reference (absolute server URLs and version suffixes removed)."""
    if isinstance(reference, dict):
        reference = reference.get("reference")
    if not isinstance(reference, str) or not reference or reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("?")[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2:
        return None
    return f"{parts[-2]}/{parts[-1]}"


def query(session, resource_type: str, query_string: str, limit: int = QUERY_LIMIT) -> list[dict]:
    """Current resources matching a search (parsed by the search package), as dicts."""
    from fhir_server.search.query import Parser
    from fhir_server.search.registry import default_registry

    pairs = parse_qsl(query_string, keep_blank_values=True)
    parsed = Parser(default_registry()).parse([resource_type], pairs, strict=True)
    parsed.limit_all = limit
    parsed.total = "none"
    parsed.includes = parsed.revincludes = ()
    return [fjson.loads(record.body) for record in session.search(parsed).matches]


class Facts:
    """A per-write cache of resources read by reference."""

    def __init__(self, session):
        # rules judge the whole record, not the caller's view of it: read below the access guard
        self.session = getattr(session, "inner", session)
        self._cache: dict[str, dict | None] = {}

    def get(self, reference: object) -> dict | None:
        ref = local_reference(reference)
        if ref is None:
            return None
        if ref not in self._cache:
            resource_type, _, id = ref.partition("/")
            try:
                record = self.session.read(resource_type, id)
            except Exception:  # an unknown type in a reference is simply unresolvable
                record = None
            self._cache[ref] = None if record is None or record.deleted else fjson.loads(record.body)
        return self._cache[ref]

    def query(self, resource_type: str, query_string: str, limit: int = QUERY_LIMIT) -> list[dict]:
        return query(self.session, resource_type, query_string, limit)

    # ---- organisations ----------------------------------------------------------------------

    def organization_ref(self, reference: object) -> str | None:
        """The organisation behind a reference to an Organization, PractitionerRole or HealthcareService."""
        ref = local_reference(reference)
        if ref is None:
            return None
        if ref.startswith("Organization/"):
            return ref
        target = self.get(ref)
        if target is None:
            return None
        if ref.startswith("PractitionerRole/"):
            return local_reference(target.get("organization"))
        if ref.startswith("HealthcareService/"):
            return local_reference(target.get("providedBy"))
        return None

    def organization(self, reference: object) -> dict | None:
        ref = self.organization_ref(reference)
        return self.get(ref) if ref else None

    @staticmethod
    def facility_level(org: dict | None) -> str | None:
        ext = v.extension(org or {}, v.FACILITY_LEVEL)
        found = v.codes(v.value(ext), v.CS_FACILITY_LEVEL)
        return found[0] if found else None

    @staticmethod
    def institution_type(org: dict | None) -> str | None:
        for concept in (org or {}).get("type") or []:
            found = v.codes(concept, v.CS_INSTITUTION_TYPE)
            if found:
                return found[0]
        return None

    @staticmethod
    def address(org: dict | None) -> dict:
        addresses = (org or {}).get("address") or []
        return addresses[0] if addresses and isinstance(addresses[0], dict) else {}

    def consortium_of(self, org_ref: str | None) -> tuple[str | None, str | None]:
        """(consortium, lead hospital) of a member institution, from its active OrganizationAffiliation."""
        if not org_ref:
            return None, None
        for affiliation in self.query("OrganizationAffiliation", f"participating-organization={org_ref}"):
            if affiliation.get("active") is False:
                continue
            return local_reference(affiliation.get("network")), local_reference(affiliation.get("organization"))
        # the lead hospital itself: it leads the consortium its members point at
        for affiliation in self.query("OrganizationAffiliation", f"primary-organization={org_ref}", limit=1):
            return local_reference(affiliation.get("network")), org_ref
        return None, None

    def members_of_lead(self, lead_ref: str) -> set[str]:
        return {local_reference(a.get("participatingOrganization"))
                for a in self.query("OrganizationAffiliation", f"primary-organization={lead_ref}")
                if a.get("active") is not False}

    # ---- practitioners ----------------------------------------------------------------------

    @staticmethod
    def professional_titles(role: dict | None) -> list[str]:
        found: list[str] = []
        for concept in (role or {}).get("code") or []:
            found.extend(v.codes(concept, v.CS_PROFESSIONAL_TITLE))
        return found
