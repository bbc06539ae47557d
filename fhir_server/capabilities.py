"""The CapabilityStatement, generated from what is registered — never a hand-kept list.

Types come from the resource-type registry, interactions from what the routes implement,
search parameters from the search registry, operations from the operations table and
profiles/implementation guides from the conformance resources the server holds.
"""

from __future__ import annotations

from . import FHIR_VERSION, __version__
from .api import operations
from .resource_types import RESOURCE_TYPES

TYPE_INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
                     "search-type"]
SYSTEM_INTERACTIONS = ["transaction", "batch", "search-system", "history-system"]


def _search_params(resource_type: str) -> list[dict]:
    try:
        from .search.registry import capability_search_params
    except ImportError:
        return []
    return capability_search_params(resource_type)


def _operation_entry(op: operations.Operation) -> dict:
    entry = {"name": op.name, "definition": (op.definition or {}).get("url")
             or f"http://hl7.org/fhir/OperationDefinition/{op.name}"}
    return entry


def build(base_url: str, conformance: list[dict], software: str = "fhir-server") -> dict:
    profiles: dict[str, list[str]] = {}
    guides = []
    for resource in conformance:
        if resource.get("resourceType") == "StructureDefinition" and resource.get("derivation") == "constraint":
            if resource.get("kind") == "resource" and resource.get("type") in RESOURCE_TYPES:
                profiles.setdefault(resource["type"], []).append(resource["url"])
        elif resource.get("resourceType") == "ImplementationGuide" and resource.get("url"):
            guides.append(resource["url"])
    ops = [op for op in operations.registered() if op.listed]
    resources = []
    for resource_type in sorted(RESOURCE_TYPES):
        entry: dict = {
            "type": resource_type,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        }
        if resource_type in profiles:
            entry["supportedProfile"] = sorted(profiles[resource_type])
        entry.update({
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "full-support",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "referencePolicy": ["literal", "logical"],
            "searchInclude": ["*"],
            "searchRevInclude": ["*"],
        })
        params = _search_params(resource_type)
        if params:
            entry["searchParam"] = params
        type_ops = [_operation_entry(op) for op in ops
                    if op.types is not None and resource_type in op.types and {"type", "instance"} & set(op.levels)]
        if type_ops:
            entry["operation"] = type_ops
        resources.append(entry)
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "kind": "instance",
        "software": {"name": software, "version": __version__},
        "implementation": {"description": "FHIR R4 server for referral exchange", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "application/fhir+xml", "json", "xml"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
            "operation": [_operation_entry(op) for op in ops if op.types is None or "system" in op.levels],
        }],
    }
    if guides:
        statement["implementationGuide"] = sorted(guides)
    if not statement["rest"][0]["operation"]:
        del statement["rest"][0]["operation"]
    return statement
