"""Run a parsed search and build the searchset Bundle: entries, total, paging links, outcome entry.

Used by the REST handlers (fhir_server.api.search) and by GET entries inside batch Bundles.
Links repeat the parameters that were applied (ignored ones are left out, as the spec asks)
and carry the backend's opaque ``_cursor``, so ``next``/``prev`` stay valid while data changes.
"""

from __future__ import annotations

from functools import partial
from typing import Iterable
from urllib.parse import parse_qsl, urlencode

import orjson

from fhir_server.errors import FhirError, operation_outcome
from fhir_server.formats import json as fjson
from fhir_server.resource_types import RESOURCE_TYPES

from . import shaping
from .query import Parser, SearchQuery
from .registry import default_registry
from .result import SearchResult


def parser_for(base_url: str, default_count: int = 20, max_count: int = 1000, store=None) -> Parser:
    """A parser for REST searches; with ``store``, ``:in`` also finds the ValueSets stored there."""
    from . import stored_value_set

    value_sets = partial(stored_value_set, store) if store is not None else None
    return Parser(default_registry(), base_url, default_count, max_count, value_sets)


def _link(base_url: str, path: str, used: list, cursor: str | None, count: int) -> str:
    pairs = [(k, v) for k, v in used if k not in ("_cursor", "_count")] + [("_count", str(count))]
    if cursor:
        pairs.append(("_cursor", cursor))
    url = f"{base_url}/{path}" if path else base_url
    return f"{url}?{urlencode(pairs)}" if pairs else url


def build(query: SearchQuery, result: SearchResult, base_url: str, path: str, raw_bodies: bool = False,
          link_pairs: list | None = None) -> dict:
    """The searchset Bundle. ``raw_bodies`` embeds stored JSON bytes as they are (JSON responses only);
    ``link_pairs`` replace the applied parameters in the links (an operation repeating its own)."""
    bundle: dict = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    used = query.used if link_pairs is None else link_pairs
    links = [{"relation": "self", "url": _link(base_url, path, used, query.cursor, query.count)}]
    if result.next_cursor or result.prev_cursor:
        links.append({"relation": "first", "url": _link(base_url, path, used, None, query.count)})
    if result.next_cursor:
        links.append({"relation": "next", "url": _link(base_url, path, used, result.next_cursor, query.count)})
    if result.prev_cursor:
        links.append({"relation": "previous", "url": _link(base_url, path, used, result.prev_cursor, query.count)})
    bundle["link"] = links
    entries = []
    if query.summary != "count":
        shaped = bool((query.summary and query.summary != "false") or query.elements)
        for mode, records in (("match", result.matches), ("include", result.included)):
            for record in records:
                if raw_bodies and not shaped:
                    resource = orjson.Fragment(record.body)
                else:
                    resource = fjson.loads(record.body)
                    if shaped:
                        resource = shaping.apply(resource, query.summary, query.elements)
                entries.append({"fullUrl": f"{base_url}/{record.resource_type}/{record.id}", "resource": resource,
                                "search": {"mode": mode}})
    if query.ignored:
        entries.append({"resource": operation_outcome(query.ignored), "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return bundle


def search_bundle(session, resource_type: str, query_string: str, base_url: str) -> dict:
    """A search given as a relative URL's type and query string (batch/transaction GET entries)."""
    pairs = parse_qsl(query_string.lstrip("?"), keep_blank_values=True)
    types = [resource_type] if resource_type else system_types(pairs)
    query = parser_for(base_url).parse(types, pairs)
    return build(query, session.search(query), base_url.rstrip("/"), resource_type)


def named_types(values: Iterable[str]) -> list[str]:
    """The resource types ``_type`` values name (comma lists, repeatable); an unknown one is a 400."""
    types = [t.strip() for value in values for t in value.split(",") if t.strip()]
    for resource_type in types:
        if resource_type not in RESOURCE_TYPES:
            raise FhirError(400, f"_type: unknown resource type '{resource_type}'", "invalid", ["_type"])
    return types


def system_types(pairs) -> list[str]:
    """The types a system search covers: ``_type`` (comma list, repeatable), else all (empty list)."""
    return named_types(value for name, value in pairs if name == "_type")
