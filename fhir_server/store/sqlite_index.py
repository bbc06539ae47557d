"""Search-index tables of the SQLite backend and the compilation of parsed searches to SQL.

One table per value kind (HAPI style), each row keyed by a 63-bit parameter key and the
resource's integer ``rid`` (``idx_resource`` maps ``rid`` ↔ type/id). Rows are written by
:meth:`SQLiteIndex.write` inside the write transaction. A parsed
:class:`fhir_server.search.query.SearchQuery` compiles to one SELECT whose conditions are
``rid IN (…)`` sets; every user value is a bound parameter. docs/search.md lists which
index serves which query shape.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import orjson

from fhir_server.errors import FhirError
from fhir_server.resource_types import RESOURCE_TYPES
from fhir_server.search import query as q
from fhir_server.search.query import Chain, Clause, Has
from fhir_server.store.base import StoredResource

TABLES = {
    "string": ("idx_string", "norm TEXT, exact TEXT"),
    "token": ("idx_token", "system TEXT, code TEXT, text TEXT"),
    "reference": ("idx_reference", "ttype TEXT, tid TEXT, url TEXT"),
    "date": ("idx_date", "low INTEGER, high INTEGER, wide INTEGER"),
    "number": ("idx_number", "value REAL"),
    "quantity": ("idx_quantity", "value REAL, system TEXT, code TEXT, unit TEXT"),
    "uri": ("idx_uri", "uri TEXT"),
}
INDEXES = [
    "CREATE INDEX IF NOT EXISTS idx_string_value ON idx_string (param, norm, rid)",
    "CREATE INDEX IF NOT EXISTS idx_string_rid ON idx_string (rid, param, norm)",
    "CREATE INDEX IF NOT EXISTS idx_token_value ON idx_token (param, code, system, rid)",
    "CREATE INDEX IF NOT EXISTS idx_token_rid ON idx_token (rid, param, code)",
    "CREATE INDEX IF NOT EXISTS idx_reference_target ON idx_reference (param, tid, ttype, rid)",
    "CREATE INDEX IF NOT EXISTS idx_reference_url ON idx_reference (param, url, rid) WHERE url IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_reference_rid ON idx_reference (rid, param, ttype, tid)",
    "CREATE INDEX IF NOT EXISTS idx_date_range ON idx_date (param, wide, low, high, rid)",
    "CREATE INDEX IF NOT EXISTS idx_date_rid ON idx_date (rid, param, low, high)",
    "CREATE INDEX IF NOT EXISTS idx_number_value ON idx_number (param, value, rid)",
    "CREATE INDEX IF NOT EXISTS idx_number_rid ON idx_number (rid, param, value)",
    "CREATE INDEX IF NOT EXISTS idx_quantity_value ON idx_quantity (param, value, rid)",
    "CREATE INDEX IF NOT EXISTS idx_quantity_rid ON idx_quantity (rid, param, value)",
    "CREATE INDEX IF NOT EXISTS idx_uri_value ON idx_uri (param, uri, rid)",
    "CREATE INDEX IF NOT EXISTS idx_uri_rid ON idx_uri (rid, param, uri)",
]
_MAX_CHAR = "\U0010ffff"
_ALL_TYPES = tuple(sorted(RESOURCE_TYPES))
#: date rows spanning less than a day are "narrow": a range query bounds their ``low`` on both sides
DAY = 86_400_000_000
_INCLUDE_LIMIT = 1000
_ITERATE_ROUNDS = 4


def _table(kind: str) -> str:
    return TABLES[kind][0]


def _insert(kind: str) -> str:
    table, columns = TABLES[kind]
    names = ", ".join(c.split()[0] for c in columns.split(", "))
    count = len(columns.split(", "))
    return f"INSERT INTO {table} (param, rid, {names}, grp) VALUES (?, ?, {', '.join('?' * count)}, ?)"


_INSERTS = {kind: _insert(kind) for kind in TABLES}


def _row_args(kind: str, rid: int, values: list[tuple]) -> list[tuple]:
    """The INSERT arguments of one resource's index rows of one kind."""
    if kind == "date":
        return [(v[0], rid, v[1], v[2], int(v[2] - v[1] >= DAY), v[3]) for v in values]
    return [(v[0], rid, *v[1:]) for v in values]


def _num(value: Decimal) -> float:
    return float(value)


@dataclass(frozen=True, slots=True)
class _SameDate:
    """Single-valued date clauses on one parameter (``ge…&lt…``), evaluated on the same index row."""

    param: object
    key: int
    values: tuple


def _merge_dates(conditions: list) -> list:
    merged, groups = [], {}
    for cond in conditions:
        if isinstance(cond, Clause) and cond.param.type == "date" and cond.modifier is None \
                and len(cond.values) == 1 and cond.values[0].prefix != "ne":
            if cond.key in groups:
                group = groups[cond.key]
                merged[group] = _SameDate(cond.param, cond.key, merged[group].values + cond.values)
                continue
            groups[cond.key] = len(merged)
            cond = _SameDate(cond.param, cond.key, cond.values)
        merged.append(cond)
    return merged


class _Sql:
    """Accumulates SQL text and its bound arguments; values only ever go to ``args``."""

    def __init__(self, index: "SQLiteIndex", base_url: str, types: tuple = ()):
        self.index = index
        self.args: list = []
        self.base_url = base_url
        #: the searched types, for clauses compiled without one type (``_id`` over several types)
        self.types = types

    def bind(self, *values) -> str:
        self.args.extend(values)
        return ", ".join("?" * len(values))

    # -- value predicates on one table alias ---------------------------------------------------
    def predicate(self, kind: str, alias: str, value, modifier: str | None) -> str:
        a = alias
        if kind == "token":
            if isinstance(value, q.StringValue):  # :text
                return f"{a}.text >= {self.bind(value.normalized)} AND {a}.text < {self.bind(value.normalized + _MAX_CHAR)}"
            if isinstance(value, q.CodeSetValue):
                groups = [f"({a}.code IN ({self.bind(*codes)}) AND ({a}.system = {self.bind(system)}"
                          f" OR {a}.system IS NULL))" for system, codes in value.codes]
                return f"({' OR '.join(groups)})" if groups else "0"
            if isinstance(value, q.OfTypeValue):
                sql = f"{a}.code = {self.bind(value.code)} AND {a}.text = {self.bind(value.value)}"
                if value.system is not None:
                    sql += f" AND {a}.system = {self.bind(value.system)}"
                return sql
            parts = []
            if value.code is not None:
                parts.append(f"{a}.code = {self.bind(value.code)}")
            if value.system == "":
                parts.append(f"{a}.system IS NULL")
            elif value.system is not None:
                parts.append(f"{a}.system = {self.bind(value.system)}")
            return " AND ".join(parts) or "1"
        if kind == "string":
            if modifier == "exact":
                return f"{a}.norm = {self.bind(value.normalized)} AND {a}.exact = {self.bind(value.text)}"
            if modifier == "contains":
                return f"instr({a}.norm, {self.bind(value.normalized)}) > 0"
            return f"{a}.norm >= {self.bind(value.normalized)} AND {a}.norm < {self.bind(value.normalized + _MAX_CHAR)}"
        if kind == "date":
            return self._date(a, value)
        if kind in ("number", "quantity"):
            sql = self._number(a, value)
            if kind == "quantity" and value.code is not None:
                if value.system is not None:
                    sql += f" AND {a}.code = {self.bind(value.code)} AND {a}.system = {self.bind(value.system)}"
                else:
                    sql += f" AND ({a}.code = {self.bind(value.code)} OR {a}.unit = {self.bind(value.code)})"
            elif kind == "quantity" and value.system is not None:
                sql += f" AND {a}.system = {self.bind(value.system)}"
            return sql
        if kind == "reference":
            if isinstance(value, q.TokenValue):  # handled on the token table by the caller
                raise AssertionError("reference :identifier compiles on the token table")
            if value.url is not None:
                return f"{a}.url = {self.bind(value.url)}"
            sql = f"{a}.tid = {self.bind(value.id)}"
            if value.type:
                sql += f" AND {a}.ttype = {self.bind(value.type)}"
            return sql
        if kind == "uri":
            if modifier == "below":
                return f"{a}.uri >= {self.bind(value.uri)} AND {a}.uri < {self.bind(value.uri + _MAX_CHAR)}"
            if modifier == "above":
                return f"substr({self.bind(value.uri)}, 1, length({a}.uri)) = {a}.uri"
            return f"{a}.uri = {self.bind(value.uri)}"
        raise FhirError(400, f"cannot search on parameters of type {kind}", "not-supported")

    def _ap(self, v) -> tuple[int, int]:
        """``ap``: the value widened by 10% of its distance from now (at least its own precision)."""
        if not hasattr(self, "now"):
            self.now = int(datetime.now(timezone.utc).timestamp() * 1_000_000)
        gap = max(abs(self.now - v.low) // 10, v.high - v.low)
        return v.low - gap, v.high + gap

    def _date(self, a: str, v) -> str:
        lo, hi = v.low, v.high
        p = v.prefix
        if p == "eq":
            return f"{a}.low >= {self.bind(lo)} AND {a}.high <= {self.bind(hi)}"
        if p == "ne":
            return f"({a}.low < {self.bind(lo)} OR {a}.high > {self.bind(hi)})"
        if p == "gt":
            return f"{a}.high > {self.bind(hi)}"
        if p == "lt":
            return f"{a}.low < {self.bind(lo)}"
        if p == "ge":
            return f"{a}.high >= {self.bind(lo)} AND ({a}.high > {self.bind(hi)} OR {a}.low >= {self.bind(lo)})"
        if p == "le":
            return f"{a}.low <= {self.bind(hi)} AND ({a}.low < {self.bind(lo)} OR {a}.high <= {self.bind(hi)})"
        if p == "sa":
            return f"{a}.low > {self.bind(hi)}"
        if p == "eb":
            return f"{a}.high < {self.bind(lo)}"
        low, high = self._ap(v)
        return f"{a}.low <= {self.bind(high)} AND {a}.high >= {self.bind(low)}"

    def _date_bounds(self, v) -> tuple[int | None, int | None]:
        """(least ``high``, greatest ``low``) a matching row can have, from one prefixed value."""
        lo, hi, p = v.low, v.high, v.prefix
        if p == "eq":
            return lo, hi
        if p in ("gt", "sa"):
            return hi + 1, None
        if p == "ge":
            return lo, None
        if p == "lt":
            return None, lo - 1
        if p == "eb":
            return None, lo - 1
        if p == "le":
            return None, hi
        if p == "ap":
            return self._ap(v)
        return None, None

    def date_selects(self, key: int, values, on_r: str) -> str:
        """Rows matching every value in ``values`` (one row: ``ge``/``lt`` pairs bound one date).

        Narrow rows (< 1 day wide) get both bounds on ``low`` so idx_date_range is read as one short
        range; wide rows (periods, year or month precision) are read by their own index prefix."""
        high_min = max((b for b in (self._date_bounds(v)[0] for v in values) if b is not None), default=None)
        low_max = min((b for b in (self._date_bounds(v)[1] for v in values) if b is not None), default=None)
        narrow = f"SELECT x.rid FROM idx_date x WHERE {on_r}x.param = {self.bind(key)} AND x.wide = 0"
        if high_min is not None:
            narrow += f" AND x.low > {self.bind(high_min - DAY)}"
        if low_max is not None:
            narrow += f" AND x.low <= {self.bind(low_max)}"
        narrow += "".join(f" AND {self._date('x', v)}" for v in values)
        wide = f"SELECT x.rid FROM idx_date x WHERE {on_r}x.param = {self.bind(key)} AND x.wide = 1"
        wide += "".join(f" AND {self._date('x', v)}" for v in values)
        return f"{narrow} UNION ALL {wide}"

    def _number(self, a: str, v) -> str:
        p = v.prefix
        if p == "eq":
            return f"{a}.value >= {self.bind(_num(v.low))} AND {a}.value < {self.bind(_num(v.high))}"
        if p == "ne":
            return f"({a}.value < {self.bind(_num(v.low))} OR {a}.value >= {self.bind(_num(v.high))})"
        if p in ("gt", "sa"):
            return f"{a}.value > {self.bind(_num(v.value))}"
        if p in ("lt", "eb"):
            return f"{a}.value < {self.bind(_num(v.value))}"
        if p == "ge":
            return f"{a}.value >= {self.bind(_num(v.value))}"
        if p == "le":
            return f"{a}.value <= {self.bind(_num(v.value))}"
        spread = abs(v.value) / 10 or (v.high - v.low)
        return f"{a}.value >= {self.bind(_num(v.value - spread))} AND {a}.value <= {self.bind(_num(v.value + spread))}"

    # -- conditions → rid sets -----------------------------------------------------------------
    def condition(self, rtype: str, cond) -> tuple[bool, str]:
        """(negated, SQL selecting rids): the resource matches iff its rid is (not) in the set."""
        if isinstance(cond, (q.Clause, _SameDate)):
            return self.clause(rtype, cond)
        if isinstance(cond, q.Chain):
            # driven by the inner set: matching targets → their (type, id) → references to them
            selects = []
            for target, inner in cond.targets:
                child = _Sql(self.index, self.base_url)
                negated, inner_sql = child.condition(target, inner)
                if negated:
                    # the type placeholder comes before the inner query's in the SQL text
                    inner_sql = f"SELECT a.rid FROM idx_resource a WHERE a.rtype = ? AND a.rid NOT IN ({inner_sql})"
                    child.args.insert(0, target)
                self.args.extend(child.args)
                selects.append(
                    f"SELECT ref.rid FROM ({inner_sql}) i CROSS JOIN idx_resource t ON t.rid = i.rid"
                    f" CROSS JOIN idx_reference ref ON ref.param = {self.bind(cond.param.key)} AND ref.tid = t.id"
                    f" AND ref.ttype = t.rtype WHERE t.rtype = {self.bind(target)}"
                )
            return False, " UNION ALL ".join(selects)
        if isinstance(cond, q.Has):
            child = _Sql(self.index, self.base_url)
            negated, inner_sql = child.condition(cond.source_type, cond.condition)
            if negated:
                inner_sql = f"SELECT a.rid FROM idx_resource a WHERE a.rtype = ? AND a.rid NOT IN ({inner_sql})"
                child.args.insert(0, cond.source_type)
            self.args.extend(child.args)
            return False, (
                f"SELECT me.rid FROM ({inner_sql}) i CROSS JOIN idx_reference ref ON ref.rid = i.rid"
                f" AND ref.param = {self.bind(cond.param.key)} AND ref.ttype = {self.bind(rtype)}"
                f" CROSS JOIN idx_resource me ON me.rtype = ref.ttype AND me.id = ref.tid"
            )
        if isinstance(cond, q.AnyOf):
            selects = []
            for inner in cond.conditions:
                negated, inner_sql = self.condition(rtype, inner)
                if negated:
                    inner_sql = f"SELECT a.rid FROM idx_resource a WHERE a.rid NOT IN ({inner_sql})"
                selects.append(inner_sql)
            return False, " UNION ALL ".join(selects) or "SELECT NULL WHERE 0"
        if isinstance(cond, q.AllOf):
            selects = []
            for inner in cond.conditions:
                negated, inner_sql = self.condition(rtype, inner)
                if negated:
                    inner_sql = f"SELECT a.rid FROM idx_resource a WHERE a.rid NOT IN ({inner_sql})"
                selects.append(f"SELECT * FROM ({inner_sql})")
            # wrapped, so a surrounding UNION ALL (AnyOf) cannot take part in the INTERSECT
            return False, f"SELECT * FROM ({' INTERSECT '.join(selects)})" if selects else "SELECT rid FROM idx_resource"
        raise AssertionError(f"unknown condition {cond!r}")

    def clause(self, rtype: str, clause, correlate: bool = False) -> tuple[bool, str]:
        """A clause's rid set; ``correlate`` restricts it to the outer row ``r`` (for EXISTS probes)."""
        on_r = "x.rid = r.rid AND " if correlate else ""
        if isinstance(clause, _SameDate):
            return False, self.date_selects(clause.key, clause.values, "x.rid = r.rid AND " if correlate else "")
        param, modifier = clause.param, clause.modifier
        if param.code == "_id":
            return self._ids(rtype, clause, on_r)
        kind = param.type
        if modifier in ("identifier", "of-type"):
            kind = "token"
        if modifier == "missing":
            missing = clause.values[0].missing
            if kind == "composite":
                key, table = param.component_key(0), None
                first = self.index.registry.component_param(param.components[0].definition, rtype)
                table = _table(first.type) if first else "idx_token"
            else:
                key, table = clause.key, _table(kind)
            return missing, f"SELECT x.rid FROM {table} x WHERE {on_r}x.param = {self.bind(key)}"
        selects = []
        values = clause.values
        if kind == "token" and modifier in (None, "not", "identifier") and len(values) > 1 and all(
                isinstance(v, q.TokenValue) and v.system is None and v.code is not None for v in values):
            # plain codes: one index probe list instead of a union of selects
            head = f"SELECT x.rid FROM idx_token x WHERE {on_r}x.param = {self.bind(clause.key)}"
            return modifier == "not", f"{head} AND x.code IN ({self.bind(*(v.code for v in values))})"
        for value in values:
            if kind == "composite":
                selects.append(self._composite(value, correlate))
                continue
            if kind == "date" and modifier is None:
                selects.append(self.date_selects(clause.key, (value,), on_r))
                continue
            table = _table(kind)
            if kind == "reference" and isinstance(value, q.ReferenceValue) and value.type and value.id \
                    and self.base_url:
                url = f"{self.base_url}/{value.type}/{value.id}"
                selects.append(f"SELECT x.rid FROM {table} x WHERE {on_r}x.param = {self.bind(clause.key)}"
                               f" AND x.url = {self.bind(url)}")
            head = f"SELECT x.rid FROM {table} x WHERE {on_r}x.param = {self.bind(clause.key)} AND "
            selects.append(head + self.predicate(kind, "x", value, None if modifier == "not" else modifier))
        return modifier == "not", " UNION ALL ".join(selects)

    def _ids(self, rtype: str | None, clause, on_r: str) -> tuple[bool, str]:
        """``_id`` on ``idx_resource``, whose ``(rtype, id)`` index the store keeps anyway, so a write adds no
        index rows for it (the parser allows only :not and :missing on ``_id``)."""
        modifier = clause.modifier
        types = (rtype,) if rtype else self.types or _ALL_TYPES
        head = f"SELECT x.rid FROM idx_resource x WHERE {on_r}x.rtype IN ({self.bind(*types)})"
        if modifier == "missing":  # every resource has an id
            return clause.values[0].missing, head
        ids = []
        for value in clause.values:
            if not isinstance(value, q.TokenValue) or value.system not in (None, ""):
                continue  # an id has no system
            if value.code is None:
                return modifier == "not", head
            ids.append(value.code)
        if not ids:
            return modifier == "not", head + " AND 0"
        return modifier == "not", f"{head} AND x.id IN ({self.bind(*ids)})"

    def _composite(self, value, correlate: bool = False) -> str:
        joins = []
        for i, (target, key, part) in list(enumerate(value.parts))[1:]:
            alias = f"c{i}"
            joins.append(f"JOIN {_table(target.type)} {alias} ON {alias}.rid = c0.rid AND {alias}.grp = c0.grp"
                         f" AND {alias}.param = {self.bind(key)} AND {self.predicate(target.type, alias, part, None)}")
        target, key, part = value.parts[0]
        on_r = "c0.rid = r.rid AND " if correlate else ""
        where = f"{on_r}c0.param = {self.bind(key)} AND {self.predicate(target.type, 'c0', part, None)}"
        return f"SELECT c0.rid FROM {_table(target.type)} c0 {' '.join(joins)} WHERE {where}"


@functools.lru_cache(maxsize=256)
def references_any_query(rows: Collection[tuple], rid: str | None = None) -> tuple[str, tuple]:
    """Does a resource's index hold one of ``rows`` (hashable: an access plan's (key, type, id) triples)?
    As (SQL, values): ``?1`` and ``?2`` the resource's type and id, then each distinct value of the rows
    bound once, since binding a text parameter copies it and the rows of one organisation share its type
    and id. Made once per plan. Given ``rid``, an SQL expression of the resource's rid (a correlated
    column), the statement takes the rows by it instead of looking the type and id up."""
    values: list = []

    def number(value) -> int:
        if value not in values:
            values.append(value)
        return values.index(value) + 3

    wanted = " OR ".join(f"(x.param = ?{number(key)} AND x.ttype = ?{number(ttype)} AND x.tid = ?{number(tid)})"
                         for key, ttype, tid in rows)
    if rid is not None:
        return f"SELECT 1 FROM idx_reference x WHERE x.rid = {rid} AND ({wanted}) LIMIT 1", tuple(values)
    return ("SELECT 1 FROM idx_resource own JOIN idx_reference x ON x.rid = own.rid"
            f" WHERE own.rtype = ?1 AND own.id = ?2 AND ({wanted}) LIMIT 1", tuple(values))


class SQLiteIndex:
    def __init__(self, registry=None):
        self._registry = registry
        self._extraction = None

    @property
    def registry(self):
        if self._registry is None:
            from fhir_server.search.registry import default_registry

            self._registry = default_registry()
        return self._registry

    @property
    def extraction(self):
        if self._extraction is None:
            from fhir_server.search.extract import Extraction

            self._extraction = Extraction(self.registry)
        return self._extraction

    def schema(self) -> list[str]:
        statements = [
            "CREATE TABLE IF NOT EXISTS idx_resource (rid INTEGER PRIMARY KEY, rtype TEXT NOT NULL, id TEXT NOT NULL)",
            "CREATE UNIQUE INDEX IF NOT EXISTS idx_resource_id ON idx_resource (rtype, id)",
        ]
        for table, columns in TABLES.values():
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {table} (param INTEGER NOT NULL, rid INTEGER NOT NULL, {columns}, grp INTEGER)"
            )
        return statements + INDEXES

    def write(self, conn, resource_type: str, id: str, resource: dict | None, last_updated: str,
              new: bool = False) -> int | None:
        """Replace the index rows of one resource (``resource`` None removes them); ``new``: the
        resource has never been stored, so there are no rows to replace. Returns the resource's rid
        from now on (None once removed): the store keeps it beside the current version."""
        row = None if new else conn.execute("SELECT rid FROM idx_resource WHERE rtype = ? AND id = ?",
                                            (resource_type, id)).fetchone()
        if row is not None:
            rid = row[0]
            for table, _ in TABLES.values():
                conn.execute(f"DELETE FROM {table} WHERE rid = ?", (rid,))
            if resource is None:
                conn.execute("DELETE FROM idx_resource WHERE rid = ?", (rid,))
                return None
        elif resource is None:
            return None
        else:
            rid = conn.execute("INSERT INTO idx_resource (rtype, id) VALUES (?, ?)", (resource_type, id)).lastrowid
        rows = self.extraction.rows(resource_type, id, resource, last_updated, id_row=False)
        for kind, values in rows.items():
            if values:
                conn.executemany(_INSERTS[kind], _row_args(kind, rid, values))
        return rid

    def prepare_new(self, resource_type: str, items: list[tuple[str, dict, str]]) -> list[dict]:
        """The index rows of resources of one type about to be created, each (id, resource, last_updated), by
        kind, still without their ``rid``: the extraction (of the whole batch at once, which walks an element
        value they share once), done before the write transaction (see :meth:`write_new`)."""
        return self.extraction.extractor(resource_type).rows_batch(items, id_row=False)

    def write_new(self, conn, items: list[tuple[str, str, dict]]) -> int:
        """Index resources never stored before, each (type, id, rows from :meth:`prepare_new`): one
        statement per table for all of them. Returns the first one's rid; the others follow in order."""
        first = (conn.execute("SELECT max(rid) FROM idx_resource").fetchone()[0] or 0) + 1
        conn.executemany("INSERT INTO idx_resource (rid, rtype, id) VALUES (?, ?, ?)",
                         [(first + n, resource_type, id) for n, (resource_type, id, _) in enumerate(items)])
        by_kind: dict[str, list[tuple]] = {}
        for n, (_, _, rows) in enumerate(items):
            for kind, values in rows.items():
                if values:
                    by_kind.setdefault(kind, []).extend(_row_args(kind, first + n, values))
        for kind, args in by_kind.items():
            conn.executemany(_INSERTS[kind], args)
        return first

    def references_any(self, conn, resource_type: str, id: str, rows: Collection[tuple]) -> bool:
        if not rows:
            return False
        sql, values = references_any_query(rows)
        cursor = conn.execute(sql, (resource_type, id, *values))
        return cursor.fetchone() is not None

    # -- search --------------------------------------------------------------------------------
    def _sort_expr(self, key, types: tuple) -> str:
        """SQL for one sort key. Parameter keys are server-made integers, inlined as literals; a
        search over several types sorts by each type's parameter of that name."""
        param, desc = key.param, key.descending
        if param.code == "_id":
            return "r.id"
        kind = param.type
        column = {"string": "s.norm", "token": "s.code", "number": "s.value", "quantity": "s.value", "uri": "s.uri",
                  "reference": "coalesce(s.ttype || '/' || s.tid, s.url)",
                  "date": "s.high" if desc else "s.low"}[kind]
        keys = {param.key}
        for rtype in types if len(types) > 1 else ():
            other = self.registry.get(rtype, param.code)
            if other is not None and other.type == kind:
                keys.add(other.key)
        match = f"= {keys.pop()}" if len(keys) == 1 else f"IN ({', '.join(str(int(k)) for k in sorted(keys))})"
        return (f"(SELECT {'max' if desc else 'min'}({column}) FROM {_table(kind)} s"
                f" WHERE s.rid = r.rid AND s.param {match})")

    @staticmethod
    def _rank(cond) -> int:
        """Rough selectivity, most selective first: the first positive condition drives the query."""
        if isinstance(cond, _SameDate):
            return 5
        if isinstance(cond, Clause):
            if cond.modifier in ("not", "missing"):
                return 9
            if cond.param.code == "_id":
                return 0
            return {"reference": 1, "token": 2, "string": 3, "uri": 3, "composite": 4}.get(cond.param.type, 5)
        return 1 if isinstance(cond, (Chain, Has)) else 6

    def _from_where(self, sql: _Sql, query) -> str:
        """``FROM … WHERE …`` for the matches: the most selective positive condition drives (its rids
        join idx_resource by primary key); simple clauses are then probed per row through the rid
        indexes, other conditions are checked as rid sets."""
        types = query.resource_types
        rtype = types[0] if len(types) == 1 else None
        sql.types = types
        conditions = sorted(_merge_dates(query.conditions), key=self._rank)
        driver = None
        if conditions and self._rank(conditions[0]) < 9:
            driver = conditions.pop(0)
        if driver is not None:
            _, driver_sql = sql.condition(rtype, driver)
            text = f"FROM (SELECT DISTINCT rid FROM ({driver_sql})) m CROSS JOIN idx_resource r ON r.rid = m.rid"
            column = "+r.rtype"
        else:
            text, column = "FROM idx_resource r", "r.rtype"
        clauses = [f"{column} IN ({sql.bind(*types)})"] if types else []
        for cond in conditions:
            if isinstance(cond, (Clause, _SameDate)):
                negated, subquery = sql.clause(rtype, cond, correlate=True)
                clauses.append(f"{'NOT ' if negated else ''}EXISTS ({subquery})")
            else:
                negated, subquery = sql.condition(rtype, cond)
                clauses.append(f"r.rid {'NOT IN' if negated else 'IN'} ({subquery})")
        return f"{text} WHERE {' AND '.join(clauses) or '1'}"

    def search(self, session, query):
        from fhir_server.search.result import SearchResult

        conn = session.conn
        result = SearchResult()
        base_url = query.base_url.rstrip("/")

        direction, boundary = self._decode_cursor(query.cursor, len(query.sort))
        want_total = query.total != "none" and query.limit_all is None
        if want_total and (boundary is not None or query.count == 0):
            sql = _Sql(self, base_url)
            result.total = conn.execute(f"SELECT count(*) {self._from_where(sql, query)}", sql.args).fetchone()[0]
        if query.count == 0 and query.limit_all is None:
            return result
        # on a first page the total rides along as a window count over the same rows
        window = want_total and boundary is None

        sql = _Sql(self, base_url)
        where = self._from_where(sql, query)
        backward = direction == "p"
        # the ordering: for each key, missing values last, then the value; ties broken by rid
        order_terms = []
        for key in query.sort:
            expr = self._sort_expr(key, query.resource_types)
            order_terms.append((f"({expr}) IS NULL", False))
            order_terms.append((expr, key.descending))
        order_terms.append(("r.rid", False))
        if boundary is not None:
            ors = []
            for i, (expr, desc) in enumerate(order_terms):
                # parenthesised: "(x) IS NULL < ?" would parse as "(x) IS (NULL < ?)"
                parts = [f"({order_terms[j][0]}) IS {sql.bind(boundary[j])}" for j in range(i)]
                parts.append(f"({expr}) {'<' if desc != backward else '>'} {sql.bind(boundary[i])}")
                ors.append("(" + " AND ".join(parts) + ")")
            where += " AND (" + " OR ".join(ors) + ")"
        order_sql = ", ".join(f"{expr} {'DESC' if desc != backward else 'ASC'}" for expr, desc in order_terms)
        select_cols = ", ".join(expr for expr, _ in order_terms)
        limit = query.limit_all if query.limit_all is not None else query.count
        if window:
            select_cols += ", count(*) OVER ()"
        statement = f"SELECT r.rtype, r.id, {select_cols} {where} ORDER BY {order_sql} LIMIT ?"
        rows = conn.execute(statement, sql.args + [limit + 1]).fetchall()
        if window:
            result.total = rows[0][-1] if rows else 0
            rows = [row[:-1] for row in rows]
        more = len(rows) > limit
        rows = rows[:limit]
        if backward:
            rows.reverse()
        records = self._load(conn, [(r[0], r[1]) for r in rows])
        result.matches = records
        if query.limit_all is None and rows:
            first, last = rows[0][2:], rows[-1][2:]
            if backward:
                result.next_cursor = self._encode_cursor("n", last)
                result.prev_cursor = self._encode_cursor("p", first) if more else None
            else:
                result.next_cursor = self._encode_cursor("n", last) if more else None
                result.prev_cursor = self._encode_cursor("p", first) if boundary is not None else None
        if query.includes or query.revincludes:
            result.included = self._includes(conn, query, records)
        return result

    @staticmethod
    def _encode_cursor(direction: str, values) -> str:
        return base64.urlsafe_b64encode(orjson.dumps([direction, *values])).decode().rstrip("=")

    @staticmethod
    def _decode_cursor(cursor: str | None, nkeys: int):
        if not cursor:
            return "n", None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            direction, values = data[0], data[1:]
            if direction not in ("n", "p") or len(values) != 2 * nkeys + 1 or not all(
                    v is None or isinstance(v, (int, float, str)) for v in values):
                raise ValueError
        except (ValueError, TypeError, IndexError):
            raise FhirError(400, "_cursor is not a valid paging cursor (it must come from a page link)", "invalid",
                            ["_cursor"]) from None
        return direction, values

    @staticmethod
    def _load(conn, keys: list[tuple[str, str]]) -> list[StoredResource]:
        """Current, non-deleted bodies for (type, id) keys, in the keys' order (one query per type)."""
        from fhir_server.store.sqlite import CURRENT, _record

        by_type: dict[str, list[str]] = {}
        for rtype, id in keys:
            by_type.setdefault(rtype, []).append(id)
        found: dict[tuple[str, str], StoredResource] = {}
        for rtype, ids in by_type.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                rows = conn.execute(f"{CURRENT} WHERE r.rtype = ? AND r.id IN"
                                    f" ({', '.join('?' * len(chunk))}) AND r.deleted = 0", [rtype, *chunk])
                for row in rows:
                    found[(row[0], row[1])] = _record(row)
        return [found[key] for key in keys if key in found]

    def _reference_keys(self, source_type: str, include) -> list[int]:
        if include.param is not None:
            return [include.param.key]
        return [p.key for p in self.registry.params(source_type) if p.type == "reference"]

    def _includes(self, conn, query, matches: list[StoredResource]) -> list[StoredResource]:
        seen = {(m.resource_type, m.id) for m in matches}
        included: list[StoredResource] = []
        frontier = matches
        for round_ in range(_ITERATE_ROUNDS):
            found: list[tuple[str, str]] = []
            for include in query.includes + query.revincludes:
                if round_ and not include.iterate:
                    continue
                found += (self._reverse if include.reverse else self._forward)(conn, include, frontier)
            new = []
            for key in dict.fromkeys(found):
                if key not in seen:
                    seen.add(key)
                    new.append(key)
            new_records = self._load(conn, new[: _INCLUDE_LIMIT - len(included)])
            included += new_records
            frontier = new_records
            if not frontier or len(included) >= _INCLUDE_LIMIT or not any(
                    i.iterate for i in query.includes + query.revincludes):
                break
        return included

    def _rids(self, conn, records: list[StoredResource], source_type: str | None) -> list[int]:
        by_type: dict[str, list[str]] = {}
        for record in records:
            if source_type in (None, "*") or record.resource_type == source_type:
                by_type.setdefault(record.resource_type, []).append(record.id)
        rids: list[int] = []
        for rtype, ids in by_type.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                rids += [row[0] for row in conn.execute(
                    f"SELECT rid FROM idx_resource WHERE rtype = ? AND id IN ({', '.join('?' * len(chunk))})",
                    [rtype, *chunk])]
        return rids

    def _forward(self, conn, include, records) -> list[tuple[str, str]]:
        out = []
        by_type: dict[str, list] = {}
        for record in records:
            if include.source_type in ("*", record.resource_type):
                by_type.setdefault(record.resource_type, []).append(record)
        for source_type, group in by_type.items():
            keys = self._reference_keys(source_type, include)
            rids = self._rids(conn, group, source_type)
            if not keys or not rids:
                continue
            sql = (f"SELECT DISTINCT ttype, tid FROM idx_reference INDEXED BY idx_reference_rid"
                   f" WHERE rid IN ({', '.join('?' * len(rids))})"
                   f" AND param IN ({', '.join('?' * len(keys))}) AND ttype IS NOT NULL")
            args = rids + keys
            if include.target_type:
                sql += " AND ttype = ?"
                args.append(include.target_type)
            out += [tuple(r) for r in conn.execute(sql, args)]
        return out

    def _reverse(self, conn, include, records) -> list[tuple[str, str]]:
        if include.source_type == "*":
            keys = [p.key for t in self.registry.by_type for p in self.registry.own_params(t) if p.type == "reference"]
        else:
            keys = self._reference_keys(include.source_type, include)
        if not keys:
            return []
        by_type: dict[str, list[str]] = {}
        for record in records:
            if not include.target_type or include.target_type == record.resource_type:
                by_type.setdefault(record.resource_type, []).append(record.id)
        out = []
        for rtype, ids in by_type.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                sql = (f"SELECT s.rtype, s.id FROM idx_reference ref JOIN idx_resource s ON s.rid = ref.rid"
                       f" WHERE ref.param IN ({', '.join('?' * len(keys))}) AND ref.tid IN"
                       f" ({', '.join('?' * len(chunk))}) AND ref.ttype = ?")
                args: list = [*keys, *chunk, rtype]
                if include.source_type != "*":
                    sql += " AND s.rtype = ?"
                    args.append(include.source_type)
                out += [tuple(r) for r in conn.execute(sql + f" LIMIT {_INCLUDE_LIMIT}", args)]
        return out


