"""The MongoDB document layout: search-index entries embedded in each resource document, and
every index the backend's queries need, declared in one list.

Why embedded (and not Spark's separate ``searchindex`` collection): the current version of a
resource, its body and its index entries are then ONE document, which MongoDB writes
atomically even without a transaction. A reader can never see a body with a stale index, a
standalone server still gets atomic single writes, and a search returns the matching
documents (bodies included) from one collection with no join. Index entries come from the
backend-neutral extraction (:mod:`fhir_server.search.extract`); each value kind is one array
of small sub-documents keyed by the 63-bit parameter key ``k``:

=========  ====  ==============================================================
kind       field sub-document fields
=========  ====  ==============================================================
string     str   k, n (normalised), e (exact text)
token      tok   k, s (system), c (code), t (normalised display/text)
reference  ref   k, t (target type), i (target id), u (absolute/canonical url)
date       dt    k, lo, hi (µs since epoch, inclusive range)
number     num   k, v
quantity   qty   k, v, s (system), c (code), u (unit)
uri        uri   k, u
=========  ====  ==============================================================

Every sub-document may carry ``g``, the composite group number. Absent values are left out
(a query for "no system" matches a missing ``s`` with ``{"s": None}``). Each array is
covered by compound multikey indexes whose keys are all inside that one array, so a query's
``$elemMatch`` on (``k``, value) gets compound index bounds.

Two derived fields serve what a relational index answers with joins:

- ``cmp``: one entry per composite group, ``{"g": n, "p": [component sub-documents]}``, so a
  composite search is one nested ``$elemMatch`` (both components in the same group);
- ``sa`` / ``sd``: per parameter key, the smallest / largest sort value of the resource
  (what SQLite's ``_sort`` computes with ``min()``/``max()`` per row), so ``_sort`` is a
  plain field sort.
"""

from __future__ import annotations

from dataclasses import dataclass

#: value kind → (document field, sub-document field names in extraction-row order, minus key and group)
LAYOUT: dict[str, tuple[str, tuple[str, ...]]] = {
    "string": ("str", ("n", "e")),
    "token": ("tok", ("s", "c", "t")),
    "reference": ("ref", ("t", "i", "u")),
    "date": ("dt", ("lo", "hi")),
    "number": ("num", ("v",)),
    "quantity": ("qty", ("v", "s", "c", "u")),
    "uri": ("uri", ("u",)),
}
#: fields of a resource document that only searches read (left out when bodies are loaded)
INDEX_FIELDS = tuple(field for field, _ in LAYOUT.values()) + ("cmp", "sa", "sd")


def index_fields(rows: dict[str, list[tuple]]) -> dict[str, list[dict]]:
    """Extraction rows (``fhir_server.search.extract``) → the arrays embedded in the resource document."""
    out: dict[str, list[dict]] = {}
    for kind, kind_rows in rows.items():
        if not kind_rows:
            continue
        field, names = LAYOUT[kind]
        seen: set[tuple] = set()
        entries = []
        for row in kind_rows:
            if row in seen:
                continue
            seen.add(row)
            entry = {"k": row[0]}
            for name, value in zip(names, row[1:-1]):
                if value is not None:
                    entry[name] = value
            if row[-1] is not None:
                entry["g"] = row[-1]
            entries.append(entry)
        out[field] = entries
    return out


def _sort_value(kind: str, row: tuple, descending: bool):
    if kind == "date":
        return row[2] if descending else row[1]
    if kind == "token":
        return row[2]
    if kind == "reference":
        return f"{row[1]}/{row[2]}" if row[1] is not None and row[2] is not None else row[3]
    return row[1]  # string (normalised), number, quantity, uri


def derived_fields(rows: dict[str, list[tuple]]) -> dict:
    """The ``cmp`` composite groups and the ``sa``/``sd`` sort values of one resource's rows."""
    low: dict[str, object] = {}
    high: dict[str, object] = {}
    groups: dict[int, list[dict]] = {}
    for kind, kind_rows in rows.items():
        _, names = LAYOUT[kind]
        for row in kind_rows:
            name = str(row[0])
            for target, descending in ((low, False), (high, True)):
                value = _sort_value(kind, row, descending)
                if value is None:
                    continue
                current = target.get(name)
                if current is None or (value > current if descending else value < current):
                    target[name] = value
            if row[-1] is not None:
                entry = {"k": row[0]}
                entry.update((n, v) for n, v in zip(names, row[1:-1]) if v is not None)
                groups.setdefault(row[-1], []).append(entry)
    out: dict = {"sa": low, "sd": high}
    if groups:
        out["cmp"] = [{"g": g, "p": parts} for g, parts in sorted(groups.items())]
    return out


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False
    #: seconds after the date in the first key field when MongoDB removes the document (TTL index)
    expire_after: int | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.keys)


def _resource_index(name: str, *keys: str) -> IndexSpec:
    return IndexSpec("resources", name, (("type", 1),) + tuple((k, 1) for k in keys))


#: every index the backend relies on; created idempotently at start-up (see docs/mongodb.md for the query shapes)
INDEXES: tuple[IndexSpec, ...] = (
    # type listing / _sort=_lastUpdated / no-parameter searches; tombstones excluded by ``deleted``
    IndexSpec("resources", "type_order", (("type", 1), ("deleted", 1), ("rid", 1))),
    IndexSpec("resources", "type_updated", (("type", 1), ("deleted", 1), ("lastUpdated", -1))),
    _resource_index("string_value", "str.k", "str.n"),
    _resource_index("token_value", "tok.k", "tok.c", "tok.s"),
    _resource_index("token_text", "tok.k", "tok.t"),
    _resource_index("reference_target", "ref.k", "ref.i", "ref.t"),
    _resource_index("reference_url", "ref.k", "ref.u"),
    _resource_index("date_value", "dt.k", "dt.lo", "dt.hi"),
    _resource_index("date_high", "dt.k", "dt.hi"),
    _resource_index("number_value", "num.k", "num.v"),
    _resource_index("quantity_value", "qty.k", "qty.v"),
    _resource_index("uri_value", "uri.k", "uri.u"),
    # composites: R4 composites lead with a token (code-value-quantity, component-code-value-…)
    _resource_index("composite_value", "cmp.p.k", "cmp.p.c"),
    # _revinclude: resources pointing at given targets, whatever the parameter
    IndexSpec("resources", "reference_any", (("ref.i", 1), ("ref.t", 1))),
    IndexSpec("history", "history_seq", (("seq", -1),)),
    IndexSpec("history", "history_type", (("type", 1), ("seq", -1))),
    IndexSpec("history", "history_instance", (("type", 1), ("id", 1), ("seq", -1))),
    IndexSpec("locks", "lock_expiry", (("expiresAt", 1),), expire_after=0),
)


#: server error codes for "an index of that name exists with other keys or options"
_INDEX_CONFLICTS = (85, 86)


def _is_conflict(error) -> bool:
    # mongomock reports the conflict without a code
    return error.code in _INDEX_CONFLICTS or (error.code is None and "already exists" in str(error))


def ensure_indexes(db) -> None:
    """Create every declared index; MongoDB leaves an identical existing index alone.

    An index whose definition changed between releases is dropped and built again (the
    name is the identity), so an upgrade never stops at start-up on a stale definition.
    """
    from pymongo import IndexModel
    from pymongo.errors import OperationFailure

    by_collection: dict[str, list] = {}
    for spec in INDEXES:
        options = {"name": spec.name}
        if spec.unique:
            options["unique"] = True
        if spec.expire_after is not None:
            options["expireAfterSeconds"] = spec.expire_after
        by_collection.setdefault(spec.collection, []).append(IndexModel(list(spec.keys), **options))
    for collection, models in by_collection.items():
        try:
            db[collection].create_indexes(models)
        except OperationFailure as error:
            if not _is_conflict(error):
                raise
            for model in models:
                try:
                    db[collection].create_indexes([model])
                except OperationFailure as conflict:
                    if not _is_conflict(conflict):
                        raise
                    db[collection].drop_index(model.document["name"])
                    db[collection].create_indexes([model])
