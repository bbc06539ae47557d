"""``$validate`` (type and instance level): structural check plus the IG profiles, as an OperationOutcome.

Parameters (R4 Resource-validate): ``resource`` (or the resource as the request body), ``mode``
(create | update | delete | profile) and ``profile`` (a StructureDefinition canonical). The answer is
200 with the OperationOutcome whether or not the resource is valid; failures to run the validation
(no resource, unknown mode) are errors.
"""

from __future__ import annotations

from fhir_server.api.operations import OperationContext, operation
from fhir_server.errors import FhirError, issue, operation_outcome
from fhir_server.formats.json import loads
from fhir_server.validation.ig import ig_validator
from fhir_server.validation.structural import structural_issues
from fhir_server.validation.write_check import profiles_to_check

MODES = ("create", "update", "delete", "profile")


def _stored(ctx: OperationContext) -> dict:
    record = ctx.repository.read(ctx.resource_type, ctx.id)
    return loads(record.body)


def validate_resource(resource: dict, profile: str | None, settings, mode: str | None = None, id_: str | None = None) -> list[dict]:
    """Issues for ``resource`` (the body of ``$validate``)."""
    issues = structural_issues(resource)
    if mode == "update" and id_ is not None and resource.get("id") != id_:
        issues.append(issue("error", "invalid", f"resource id {resource.get('id')!r} does not match {id_!r}", ["id"]))
    if mode == "create" and "id" in resource and id_ is None:
        issues.append(issue("information", "informational", "the id is ignored on create"))
    validator = ig_validator()
    # mode=profile checks the named profile only; otherwise the claimed (and required) IG profiles too
    profiles = [] if mode == "profile" else profiles_to_check(resource, settings)
    if profile:
        profile = profile.split("|", 1)[0]
        if not validator.knows(profile):
            issues.append(issue("error", "not-supported", f"profile {profile} is not known to this server", ["profile"]))
        elif profile not in profiles:
            profiles.append(profile)
    issues.extend(validator.validate(resource, profiles))
    if resource.get("resourceType") == "Bundle" and mode != "profile":
        issues.extend(_entry_issues(resource, settings))
    return issues


def _entry_issues(bundle: dict, settings) -> list[dict]:
    """Profile issues of the Bundle's entries (the structural check of the Bundle already covered them)."""
    validator = ig_validator()
    issues = []
    for index, entry in enumerate(bundle.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        resource_type = resource.get("resourceType", "")
        prefix = f"Bundle.entry[{index}].resource"
        for found in validator.validate(resource, profiles_to_check(resource, settings)):
            found = dict(found)
            found["expression"] = [prefix + e[len(resource_type):] if e.startswith(resource_type) else e for e in found.get("expression", [])]
            issues.append(found)
    return issues


@operation("validate", types=None, levels=("type", "instance"), methods=("GET", "POST"), affects_state=False)
def validate(ctx: OperationContext) -> dict:
    mode = ctx.param("mode")
    if mode is not None and mode not in MODES:
        raise FhirError(400, f"unknown mode {mode!r} (expected one of {', '.join(MODES)})", "invalid")
    profile = ctx.param("profile")
    if mode == "delete":
        if ctx.id is None:
            raise FhirError(400, "mode=delete needs an instance ($validate on Type/id)", "invalid")
        _stored(ctx)  # 404/410 when there is nothing to delete
        protected = (ctx.resource_type, ctx.id) in getattr(ctx.repository, "protected", set())
        issues = [issue("error", "business-rule", f"{ctx.resource_type}/{ctx.id} is read-only")] if protected else []
        return operation_outcome(issues or [issue("information", "informational", "All OK")])
    resource = ctx.param("resource") if ctx.body is None else ctx.body
    if resource is None and ctx.id is not None:
        resource = _stored(ctx)
    if not isinstance(resource, dict):
        raise FhirError(400, "$validate needs a resource: the request body or a 'resource' parameter", "required")
    if ctx.resource_type and resource.get("resourceType") != ctx.resource_type:
        raise FhirError(400, f"$validate on {ctx.resource_type} received a {resource.get('resourceType')}", "invalid")
    issues = validate_resource(resource, profile, ctx.settings, mode, ctx.id)
    return operation_outcome(issues or [issue("information", "informational", "All OK")])
