"""Subscription criteria (``Type?search``): parsed once when the Subscription is written, matched
against committed resources through the search package (so a criterion means what the same
search means)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fhir_server.errors import FhirError
from fhir_server.resource_types import RESOURCE_TYPES


def parse(criteria: object) -> tuple[str, list[tuple[str, str]]]:
    """(resource type, search pairs) of a criteria string; FhirError 422 when it is not one."""
    if not isinstance(criteria, str) or not criteria.strip():
        raise FhirError(422, "Subscription.criteria is required (e.g. Task?owner=Organization/x)", "required",
                        ["Subscription.criteria"])
    resource_type, _, query = criteria.strip().partition("?")
    if resource_type not in RESOURCE_TYPES:
        raise FhirError(422, f"Subscription.criteria names unknown type '{resource_type}'", "invalid",
                        ["Subscription.criteria"])
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name.startswith("_") and name not in ("_id", "_tag", "_profile", "_security") for name, _ in pairs):
        raise FhirError(422, "Subscription.criteria may only use filtering search parameters", "invalid",
                        ["Subscription.criteria"])
    _compile(resource_type, pairs, None)
    return resource_type, pairs


def _compile(resource_type: str, pairs: list[tuple[str, str]], id: str | None):
    from fhir_server.search.query import Parser
    from fhir_server.search.registry import default_registry

    try:
        query = Parser(default_registry()).parse([resource_type], pairs + ([("_id", id)] if id else []), strict=True)
    except FhirError as error:
        raise FhirError(422, f"Subscription.criteria: {error.issues[0].get('diagnostics')}", "invalid",
                        ["Subscription.criteria"]) from None
    query.limit_all = 1
    query.total = "none"
    query.includes = query.revincludes = ()
    return query


def matches(session, resource_type: str, pairs: list[tuple[str, str]], record) -> bool:
    """Does the committed record (its current version) meet the criteria?"""
    if record.resource_type != resource_type or record.deleted:
        return False
    if not pairs:
        return True
    return bool(session.search(_compile(resource_type, pairs, record.id)).matches)
