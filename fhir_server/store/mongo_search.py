"""Compile the parsed search expression (:mod:`fhir_server.search.query`) to MongoDB queries and run them.

Same semantics as the SQLite compiler (fhir_server/store/sqlite_index.py), same result
(:class:`fhir_server.search.result.SearchResult`), same order: ``_sort`` keys with missing
values last, ties by ``rid`` (creation order). Each clause becomes an ``$elemMatch`` on one
embedded index array (:mod:`fhir_server.store.mongo_index`); ``:not`` and ``:missing=true``
become ``$nor``; chains and ``_has`` run their inner search first and match the ids found.

User input is only ever a *value* in the query document, under a field name this module
chose: a search for ``$ne`` or ``{"$where": …}`` compares against that text. The one pattern
built from input (``:contains``) is escaped with :func:`re.escape`.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone

import orjson

from fhir_server.errors import FhirError

from .mongo_index import INDEX_FIELDS, LAYOUT

_MAX_CHAR = "\U0010ffff"
_INCLUDE_LIMIT = 1000
_ITERATE_ROUNDS = 4
_NEVER = {"_id": {"$in": []}}
#: every index field and derived field left out when resource bodies are loaded
_BODY_ONLY = {field: 0 for field in INDEX_FIELDS}


def _field(kind: str) -> str:
    return LAYOUT[kind][0]


def _prefix_range(text: str) -> dict:
    return {"$gte": text, "$lt": text + _MAX_CHAR}


class Compiler:
    """Builds the filter document of one search; chains and ``_has`` query the session for their inner ids."""

    def __init__(self, session, base_url: str):
        self.session = session
        self.base_url = base_url

    # -- the whole query ------------------------------------------------------------------------
    def filter(self, query) -> dict:
        types = query.resource_types
        rtype = types[0] if len(types) == 1 else None
        flt: dict = {"deleted": False}
        if len(types) == 1:
            flt["type"] = types[0]
        elif types:
            flt["type"] = {"$in": list(types)}
        conditions = [self.condition(rtype, cond) if not isinstance(cond, list) else self._same_date(cond)
                      for cond in _merge_dates(query.conditions)]
        if conditions:
            flt["$and"] = conditions
        return flt

    def _same_date(self, clauses: list) -> dict:
        """Single-valued date clauses on one parameter (``ge…&lt…``) hold on the same index entry, as in SQLite."""
        predicates = [self._date(clause.values[0]) for clause in clauses]
        match = {"k": clauses[0].key}
        if len(predicates) == 1:
            match.update(predicates[0])
        else:
            match["$and"] = predicates
        return {"dt": {"$elemMatch": match}}

    # -- conditions ---------------------------------------------------------------------------
    def condition(self, rtype: str | None, cond) -> dict:
        from fhir_server.search import query as q

        if isinstance(cond, q.Clause):
            return self.clause(cond)
        if isinstance(cond, q.Chain):
            branches = []
            for target, inner in cond.targets:
                ids = self._ids(target, inner)
                branches.append({"ref": {"$elemMatch": {"k": cond.param.key, "t": target, "i": {"$in": ids}}}})
            return _any(branches)
        if isinstance(cond, q.Has):
            inner = self._filter_for(cond.source_type, cond.condition)
            ids: dict[str, None] = {}
            for doc in self._find(inner, {"ref": 1}):
                for entry in doc.get("ref") or ():
                    if entry.get("k") == cond.param.key and rtype is not None and entry.get("t") == rtype \
                            and "i" in entry:
                        ids[entry["i"]] = None
            return {"type": rtype, "id": {"$in": list(ids)}} if rtype is not None else dict(_NEVER)
        if isinstance(cond, q.AnyOf):
            return _any([self.condition(rtype, inner) for inner in cond.conditions])
        if isinstance(cond, q.AllOf):  # access-policy restrictions inside chains and _has
            parts = [self.condition(rtype, inner) for inner in cond.conditions]
            return parts[0] if len(parts) == 1 else {"$and": parts} if parts else {}
        raise AssertionError(f"unknown condition {cond!r}")

    def clause(self, clause) -> dict:
        from fhir_server.search import query as q

        param, modifier = clause.param, clause.modifier
        kind = "token" if modifier in ("identifier", "of-type") else param.type
        if modifier == "missing":
            if kind == "composite":
                key = param.component_key(0)
                first = self._registry().component_param(param.components[0].definition, param.owner)
                field = _field(first.type) if first is not None else "tok"
            else:
                key, field = clause.key, _field(kind)
            present = {field: {"$elemMatch": {"k": key}}}
            return {"$nor": [present]} if clause.values[0].missing else present
        values = clause.values
        if kind == "token" and modifier in (None, "not", "identifier") and len(values) > 1 and all(
                isinstance(v, q.TokenValue) and v.system is None and v.code is not None for v in values):
            # plain codes (status=requested,received): one index probe list instead of an $or
            match = {"tok": {"$elemMatch": {"k": clause.key, "c": {"$in": [v.code for v in values]}}}}
            return {"$nor": [match]} if modifier == "not" else match
        branches = []
        for value in values:
            if kind == "composite":
                branches.append(self._composite(value))
                continue
            if kind == "reference" and isinstance(value, q.ReferenceValue) and value.type and value.id \
                    and self.base_url:
                url = f"{self.base_url}/{value.type}/{value.id}"
                branches.append({"ref": {"$elemMatch": {"k": clause.key, "u": url}}})
            match = {"k": clause.key, **self.predicate(kind, value, None if modifier == "not" else modifier)}
            branches.append({_field(kind): {"$elemMatch": match}})
        match = _any(branches)
        return {"$nor": [match]} if modifier == "not" else match

    def _composite(self, value) -> dict:
        parts = [{"p": {"$elemMatch": {"k": key, **self.predicate(target.type, part, None)}}}
                 for target, key, part in value.parts]
        return {"cmp": {"$elemMatch": {"$and": parts}}}

    # -- value predicates (fields of one index sub-document) ------------------------------------
    def predicate(self, kind: str, value, modifier: str | None) -> dict:
        from fhir_server.search import query as q

        if kind == "token":
            if isinstance(value, q.StringValue):  # :text
                return {"t": _prefix_range(value.normalized)}
            if isinstance(value, q.CodeSetValue):
                groups = [{"c": {"$in": list(codes)}, "s": {"$in": [system, None]}} for system, codes in value.codes]
                return {"$or": groups} if groups else {"c": {"$in": []}}
            if isinstance(value, q.OfTypeValue):
                match = {"c": value.code, "t": value.value}
                if value.system is not None:
                    match["s"] = value.system
                return match
            match = {}
            if value.code is not None:
                match["c"] = value.code
            if value.system == "":
                match["s"] = None
            elif value.system is not None:
                match["s"] = value.system
            return match
        if kind == "string":
            if modifier == "exact":
                return {"n": value.normalized, "e": value.text}
            if modifier == "contains":
                return {"n": {"$regex": re.escape(value.normalized)}}
            return {"n": _prefix_range(value.normalized)}
        if kind == "date":
            return self._date(value)
        if kind in ("number", "quantity"):
            match = self._number(value)
            if kind == "quantity" and value.code is not None:
                if value.system is not None:
                    match.update(c=value.code, s=value.system)
                else:
                    match.setdefault("$and", []).append({"$or": [{"c": value.code}, {"u": value.code}]})
            elif kind == "quantity" and value.system is not None:
                match["s"] = value.system
            return match
        if kind == "reference":
            if isinstance(value, q.TokenValue):
                raise AssertionError("reference :identifier compiles on the token index")
            if value.url is not None:
                return {"u": value.url}
            match = {"i": value.id}
            if value.type:
                match["t"] = value.type
            return match
        if kind == "uri":
            if modifier == "below":
                return {"u": _prefix_range(value.uri)}
            if modifier == "above":  # the stored uri is a prefix of the given one
                return {"u": {"$in": [value.uri[:n] for n in range(1, len(value.uri) + 1)]}}
            return {"u": value.uri}
        raise FhirError(400, f"cannot search on parameters of type {kind}", "not-supported")

    @staticmethod
    def _date(v) -> dict:
        lo, hi, p = v.low, v.high, v.prefix
        if p == "eq":
            return {"lo": {"$gte": lo}, "hi": {"$lte": hi}}
        if p == "ne":
            return {"$or": [{"lo": {"$lt": lo}}, {"hi": {"$gt": hi}}]}
        if p == "gt":
            return {"hi": {"$gt": hi}}
        if p == "lt":
            return {"lo": {"$lt": lo}}
        if p == "ge":
            return {"hi": {"$gte": lo}, "$or": [{"hi": {"$gt": hi}}, {"lo": {"$gte": lo}}]}
        if p == "le":
            return {"lo": {"$lte": hi}, "$or": [{"lo": {"$lt": lo}}, {"hi": {"$lte": hi}}]}
        if p == "sa":
            return {"lo": {"$gt": hi}}
        if p == "eb":
            return {"hi": {"$lt": lo}}
        # ap: overlaps the value widened by 10% of its distance from now (at least its own precision)
        now = int(datetime.now(timezone.utc).timestamp() * 1_000_000)
        gap = max(abs(now - lo) // 10, hi - lo)
        return {"lo": {"$lte": hi + gap}, "hi": {"$gte": lo - gap}}

    @staticmethod
    def _number(v) -> dict:
        p = v.prefix
        if p == "eq":
            return {"v": {"$gte": float(v.low), "$lt": float(v.high)}}
        if p == "ne":
            return {"$or": [{"v": {"$lt": float(v.low)}}, {"v": {"$gte": float(v.high)}}]}
        if p in ("gt", "sa"):
            return {"v": {"$gt": float(v.value)}}
        if p in ("lt", "eb"):
            return {"v": {"$lt": float(v.value)}}
        if p == "ge":
            return {"v": {"$gte": float(v.value)}}
        if p == "le":
            return {"v": {"$lte": float(v.value)}}
        spread = abs(v.value) / 10 or (v.high - v.low)
        return {"v": {"$gte": float(v.value - spread), "$lte": float(v.value + spread)}}

    # -- inner searches (chains, _has) ----------------------------------------------------------
    def _filter_for(self, rtype: str, cond) -> dict:
        return {"deleted": False, "type": rtype, "$and": [self.condition(rtype, cond)]}

    def _ids(self, rtype: str, cond) -> list[str]:
        return [doc["id"] for doc in self._find(self._filter_for(rtype, cond), {"id": 1})]

    def _find(self, flt: dict, projection: dict):
        return self.session.store.db["resources"].find(flt, projection, session=self.session.cs)

    def _registry(self):
        return self.session.store.extraction().registry


def _merge_dates(conditions: list) -> list:
    """Top-level conditions with single-valued date clauses of one parameter grouped into lists."""
    from fhir_server.search import query as q

    merged: list = []
    groups: dict[int, list] = {}
    for cond in conditions:
        if isinstance(cond, q.Clause) and cond.param.type == "date" and cond.modifier is None \
                and len(cond.values) == 1 and cond.values[0].prefix != "ne":
            if cond.key not in groups:
                groups[cond.key] = []
                merged.append(groups[cond.key])
            groups[cond.key].append(cond)
        else:
            merged.append(cond)
    return merged


def _any(branches: list[dict]) -> dict:
    if not branches:
        return dict(_NEVER)
    return branches[0] if len(branches) == 1 else {"$or": branches}


# --- running a search ---------------------------------------------------------------------------

def _order_terms(query) -> list[tuple[str, bool, str | None]]:
    """(field, descending, source) per ordering term; ``source`` is the sort-value path a missing-flag reads."""
    from fhir_server.search.extract import LAST_UPDATED_KEY

    terms: list[tuple[str, bool, str | None]] = []
    for i, key in enumerate(query.sort):
        param, desc = key.param, key.descending
        if param.code == "_id":
            terms.append(("id", desc, None))
        elif param.key == LAST_UPDATED_KEY:
            terms.append(("lastUpdated", desc, None))
        else:
            source = f"{'sd' if desc else 'sa'}.{param.key}"
            terms.append((f"_m{i}", False, source))  # missing values last, whatever the direction
            terms.append((f"_s{i}", desc, source))
    terms.append(("rid", False, None))
    return terms


def _encode_cursor(direction: str, values: list) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([direction, *values])).decode().rstrip("=")


def _decode_cursor(cursor: str | None, nterms: int):
    if not cursor:
        return "n", None
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        direction, values = data[0], data[1:]
        if direction not in ("n", "p") or len(values) != nterms or not all(
                v is None or isinstance(v, (int, float, str)) for v in values):
            raise ValueError
    except (ValueError, TypeError, IndexError):
        raise FhirError(400, "_cursor is not a valid paging cursor (it must come from a page link)", "invalid",
                        ["_cursor"]) from None
    return direction, values


def _boundary(terms, values: list, backward: bool) -> dict:
    """Rows strictly after (before, going backward) the boundary row in the ordering."""
    branches = []
    for i, (field, desc, _) in enumerate(terms):
        if values[i] is None:
            continue  # nothing compares greater or smaller than a missing value (as with SQL NULL)
        match = {terms[j][0]: values[j] for j in range(i)}
        match[field] = {"$lt" if desc != backward else "$gt": values[i]}
        branches.append(match)
    return _any(branches)


def pipeline(query, flt: dict, cursor_values: list | None, backward: bool, limit: int) -> list[dict]:
    """The aggregation that returns one page of matching documents in search order."""
    terms = _order_terms(query)
    stages: list[dict] = [{"$match": flt}]
    computed = {}
    for field, _, source in terms:
        if source is None:
            continue
        if field.startswith("_m"):
            computed[field] = {"$cond": [{"$eq": [{"$ifNull": [f"${source}", None]}, None]}, 1, 0]}
        else:
            computed[field] = f"${source}"
    if computed:
        stages.append({"$addFields": computed})
    if cursor_values is not None:
        stages.append({"$match": _boundary(terms, cursor_values, backward)})
    stages.append({"$sort": {field: (-1 if desc != backward else 1) for field, desc, _ in terms}})
    stages.append({"$limit": limit})
    return stages


def search(session, query):
    """Run a parsed search on a MongoDB session; the same SearchResult the SQLite backend returns."""
    from fhir_server.search.result import SearchResult

    resources = session.store.db["resources"]
    result = SearchResult()
    compiler = Compiler(session, query.base_url.rstrip("/"))
    flt = compiler.filter(query)
    if query.total != "none" and query.limit_all is None:
        result.total = resources.count_documents(flt, session=session.cs)
    if query.count == 0 and query.limit_all is None:
        return result
    terms = _order_terms(query)
    direction, boundary = _decode_cursor(query.cursor, len(terms))
    backward = direction == "p"
    limit = query.limit_all if query.limit_all is not None else query.count
    stages = pipeline(query, flt, boundary, backward, limit + 1)
    keep_refs = bool(query.includes)
    stages.append({"$project": {k: v for k, v in _BODY_ONLY.items() if not (keep_refs and k == "ref")}})
    docs = list(resources.aggregate(stages, session=session.cs))
    more = len(docs) > limit
    docs = docs[:limit]
    if backward:
        docs.reverse()
    result.matches = [_record(doc) for doc in docs]
    if query.limit_all is None and docs:
        first, last = _values(docs[0], terms), _values(docs[-1], terms)
        if backward:
            result.next_cursor = _encode_cursor("n", last)
            result.prev_cursor = _encode_cursor("p", first) if more else None
        else:
            result.next_cursor = _encode_cursor("n", last) if more else None
            result.prev_cursor = _encode_cursor("p", first) if boundary is not None else None
    if query.includes or query.revincludes:
        result.included = _Includes(session, compiler._registry()).run(query, docs)
    return result


def _values(doc: dict, terms) -> list:
    return [doc.get(field) for field, _, _ in terms]


def _record(doc: dict):
    from .mongo import _record as record

    return record(doc)


class _Includes:
    """``_include`` / ``_revinclude`` (with ``:iterate``), bounded like the SQLite backend."""

    def __init__(self, session, registry):
        self.session = session
        self.registry = registry
        self.resources = session.store.db["resources"]

    def _reference_keys(self, source_type: str, include) -> list[int]:
        if include.param is not None:
            return [include.param.key]
        return [p.key for p in self.registry.params(source_type) if p.type == "reference"]

    def run(self, query, docs: list[dict]) -> list:
        matches = [(doc["type"], doc["id"]) for doc in docs]
        seen = set(matches)
        refs = {(doc["type"], doc["id"]): doc.get("ref") or [] for doc in docs}
        self.rids = {(doc["type"], doc["id"]): doc.get("rid", 0) for doc in docs}
        included = []
        frontier = matches
        everything = query.includes + query.revincludes
        for round_ in range(_ITERATE_ROUNDS):
            found: list[tuple[str, str]] = []
            for include in everything:
                if round_ and not include.iterate:
                    continue
                if include.reverse:
                    found += self._reverse(include, frontier)
                else:
                    found += self._forward(include, frontier, refs)
            new = []
            for key in dict.fromkeys(found):
                if key not in seen:
                    seen.add(key)
                    new.append(key)
            loaded = self._load(new[: _INCLUDE_LIMIT - len(included)], refs)
            included += loaded
            frontier = [(r.resource_type, r.id) for r in loaded]
            if not frontier or len(included) >= _INCLUDE_LIMIT or not any(i.iterate for i in everything):
                break
        return included

    def _forward(self, include, frontier, refs) -> list[tuple[str, str]]:
        """Targets per source type, sources in ``rid`` order, entries by (parameter key, type, id) — SQLite's order."""
        out = []
        by_type: dict[str, list] = {}
        for rtype, id in frontier:
            if include.source_type in ("*", rtype):
                by_type.setdefault(rtype, []).append((rtype, id))
        for rtype, sources in by_type.items():
            keys = set(self._reference_keys(rtype, include))
            for source in sorted(sources, key=lambda key: self.rids.get(key, 0)):
                found = sorted((entry["k"], entry["t"], entry["i"]) for entry in refs.get(source, ())
                               if entry.get("k") in keys and entry.get("t") is not None and "i" in entry
                               and (not include.target_type or entry["t"] == include.target_type))
                out += [(target, id) for _, target, id in found]
        return list(dict.fromkeys(out))

    def _reverse(self, include, frontier) -> list[tuple[str, str]]:
        out = []
        keys = self._reference_keys(include.source_type, include) if include.source_type != "*" else None
        for rtype, id in frontier:
            if include.target_type and include.target_type != rtype:
                continue
            match: dict = {"i": id, "t": rtype}
            flt: dict = {"deleted": False}
            if keys is not None:
                if not keys:
                    continue
                match["k"] = {"$in": keys}
                flt["type"] = include.source_type
            flt["ref"] = {"$elemMatch": match}
            docs = self.resources.find(flt, {"type": 1, "id": 1, "rid": 1, "ref": 1},
                                       session=self.session.cs).limit(_INCLUDE_LIMIT)
            # SQLite's order: by parameter key, then rid (one row per referring parameter)
            found = sorted((entry["k"], doc.get("rid", 0), doc["type"], doc["id"]) for doc in docs
                           for entry in doc.get("ref") or ()
                           if entry.get("i") == id and entry.get("t") == rtype
                           and (keys is None or entry.get("k") in keys))
            out += [(t, i) for _, _, t, i in found]
        return out

    def _load(self, keys: list[tuple[str, str]], refs: dict) -> list:
        if not keys:
            return []
        ids = [f"{t}/{i}" for t, i in keys]
        projection = {k: v for k, v in _BODY_ONLY.items() if k != "ref"}
        docs = {doc["_id"]: doc for doc in self.resources.find({"_id": {"$in": ids}, "deleted": False}, projection,
                                                                session=self.session.cs)}
        out = []
        for key in ids:
            doc = docs.get(key)
            if doc is not None:
                refs[(doc["type"], doc["id"])] = doc.get("ref") or []
                self.rids[(doc["type"], doc["id"])] = doc.get("rid", 0)
                out.append(_record(doc))
        return out
