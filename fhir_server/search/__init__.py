"""FHIR search: parameter registry, index extraction, query parsing and result shaping.

Backend-neutral: this package parses and extracts; store backends compile the parsed
:class:`~fhir_server.search.query.SearchQuery` (SQLite in fhir_server.store.sqlite_index).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

#: most resources a conditional interaction looks at (more matches are an error anyway)
FIND_LIMIT = 100


def find(session, resource_type: str, query_string: str) -> list:
    """Current resources of ``resource_type`` matching a conditional query (If-None-Exist, conditional
    update/delete). Unknown parameters are an error here: a conditional operation must not widen."""
    from .query import Parser
    from .registry import default_registry

    pairs = parse_qsl(query_string.lstrip("?"), keep_blank_values=True)
    pairs = [(k, v) for k, v in pairs if k not in ("_format", "_pretty")]
    query = Parser(default_registry()).parse([resource_type], pairs, strict=True)
    query.limit_all = FIND_LIMIT
    query.total = "none"
    query.includes = query.revincludes = ()
    return session.search(query).matches


def stored_value_set(store, url: str) -> dict | None:
    """The ValueSet stored here under a canonical URL (``url|version`` picks a version), or None."""
    from urllib.parse import urlencode

    from fhir_server.formats import json as fjson

    canonical, _, version = url.partition("|")
    query = urlencode([("url", canonical)] + ([("version", version)] if version else []))
    with store.session() as session:
        matches = find(session, "ValueSet", query)
    return fjson.loads(matches[0].body) if matches else None
