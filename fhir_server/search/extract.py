"""Index extraction: resource dict → backend-neutral index rows, once per write.

Rows are plain tuples grouped by value kind; every row starts with the parameter key and
ends with a composite group number (None outside composites):

- ``string``:    (key, normalised, exact, group)
- ``token``:     (key, system, code, normalised display text, group)
- ``reference``: (key, target type, target id, url, group)
- ``date``:      (key, low µs, high µs, group)
- ``number``:    (key, value, group)
- ``quantity``:  (key, value, system, code, unit, group)
- ``uri``:       (key, uri, group)

Derived rows share the tables: ``identifier:of-type`` tokens are (type system, type code,
value) and ``reference:identifier`` tokens hold the reference's identifier. Composite
parameters write one row per component under the component's key with a shared group.
"""

from __future__ import annotations

from decimal import Decimal

from ..formats import json as fjson
from .paths import compile_expression, compile_relative, first_elements
from .registry import Registry, SearchParam, param_key
from .values import MAX_TIME, MIN_TIME, date_range, normalize

KINDS = ("string", "token", "reference", "date", "number", "quantity", "uri")
ID_KEY = param_key("Resource", "_id")
LAST_UPDATED_KEY = param_key("Resource", "_lastUpdated")
_CONTACT_SYSTEMS = frozenset(("phone", "fax", "email", "pager", "url", "sms", "other"))
_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _strings(node, out: list) -> None:
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, dict):
        if "family" in node or "given" in node:
            parts = _NAME_PARTS
            family, given = node.get("family"), node.get("given") or []
            if isinstance(family, str) and given and not family.isascii():
                # 张三: CJK names are searched as one run of characters, family first
                out.append(family + "".join(g for g in given if isinstance(g, str)))
        elif any(k in node for k in _ADDRESS_PARTS):
            parts = _ADDRESS_PARTS
        else:
            parts = tuple(k for k, v in node.items() if isinstance(v, (str, list)) and k not in ("id", "extension"))
        for part in parts:
            value = node.get(part)
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list):
                out.extend(v for v in value if isinstance(v, str))


def _add_strings(rows, key, node, group) -> None:
    found: list[str] = []
    _strings(node, found)
    append = rows["string"].append
    for text in found:
        append((key, normalize(text)[:255], text[:255], group))


def _add_tokens(rows, param: SearchParam, key, node, group) -> None:
    append = rows["token"].append
    if isinstance(node, str):
        append((key, None, node, None, group))
    elif isinstance(node, bool):
        append((key, None, "true" if node else "false", None, group))
    elif isinstance(node, dict):
        if "coding" in node or ("text" in node and "value" not in node and "code" not in node):
            text = node.get("text")
            codings = [c for c in node.get("coding") or () if isinstance(c, dict)]
            for coding in codings:
                display = text or coding.get("display")
                append((key, coding.get("system"), coding.get("code"), normalize(display) if display else None, group))
            if isinstance(text, str) and not codings:
                append((key, None, None, normalize(text), group))
        elif "value" in node and ("code" not in node):
            value = node.get("value")
            if not isinstance(value, str):
                return
            system = node.get("system")
            ctype = node.get("type")
            if system in _CONTACT_SYSTEMS or "use" in node and system is None and ctype is None:
                append((key, system, value, None, group))
                return
            text = ctype.get("text") if isinstance(ctype, dict) else None
            append((key, system, value, normalize(text) if text else None, group))
            if isinstance(ctype, dict):
                of_type = param.sub_key("of-type")
                for coding in ctype.get("coding") or ():
                    if isinstance(coding, dict):
                        rows["token"].append((of_type, coding.get("system"), coding.get("code"), value, group))
        elif "code" in node or "system" in node:
            display = node.get("display")
            code = node.get("code")
            if code is not None and not isinstance(code, str):
                code = str(code)
            append((key, node.get("system"), code, normalize(display) if display else None, group))
    elif isinstance(node, (int, Decimal, float)):
        append((key, None, str(node), None, group))


def split_reference(reference: str) -> tuple[str | None, str | None, str | None]:
    """(type, id, url) for a literal reference; absolute and urn references keep only the url."""
    if reference.startswith("#"):
        return None, None, None
    if "://" in reference or reference.startswith("urn:"):
        return None, None, reference.split("|", 1)[0]
    parts = reference.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) == 2 and parts[0][:1].isupper():
        return parts[0], parts[1], None
    return None, None, reference


def _add_references(rows, param: SearchParam, key, node, group) -> None:
    if isinstance(node, str):  # canonical
        rows["reference"].append((key, None, None, node.split("|", 1)[0], group))
        return
    if not isinstance(node, dict):
        return
    reference = node.get("reference")
    if isinstance(reference, str):
        rtype, rid, url = split_reference(reference)
        if rtype or url:
            rows["reference"].append((key, rtype, rid, url, group))
    identifier = node.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        rows["token"].append((param.sub_key("identifier"), identifier.get("system"), identifier["value"], None, group))


def _add_dates(rows, key, node, group) -> None:
    append = rows["date"].append
    if isinstance(node, str):
        rng = date_range(node)
        if rng:
            append((key, rng[0], rng[1], group))
    elif isinstance(node, dict):
        if "start" in node or "end" in node:
            start = date_range(node["start"]) if isinstance(node.get("start"), str) else None
            end = date_range(node["end"]) if isinstance(node.get("end"), str) else None
            append((key, start[0] if start else MIN_TIME, end[1] if end else MAX_TIME, group))
        elif "event" in node or "repeat" in node:
            for event in node.get("event") or ():
                _add_dates(rows, key, event, group)
            bounds = (node.get("repeat") or {}).get("boundsPeriod")
            if isinstance(bounds, dict):
                _add_dates(rows, key, bounds, group)


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Decimal):
        return float(value)
    return None


def _add_numbers(rows, key, node, group) -> None:
    value = _number(node.get("value") if isinstance(node, dict) else node)
    if value is not None:
        rows["number"].append((key, value, group))


def _add_quantities(rows, key, node, group) -> None:
    if not isinstance(node, dict):
        return
    if "low" in node or "high" in node:  # Range: index both ends
        for end in ("low", "high"):
            if isinstance(node.get(end), dict):
                _add_quantities(rows, key, node[end], group)
        return
    value = _number(node.get("value"))
    if value is None:
        return
    code = node.get("code") or node.get("currency")
    rows["quantity"].append((key, value, node.get("system"), code, node.get("unit"), group))


def _add_uris(rows, key, node, group) -> None:
    if isinstance(node, str):
        rows["uri"].append((key, node, group))


def add_values(rows: dict, param: SearchParam, key: int, nodes: list, group) -> None:
    kind = param.type
    for node in nodes:
        if kind == "token":
            _add_tokens(rows, param, key, node, group)
        elif kind == "string":
            _add_strings(rows, key, node, group)
        elif kind == "reference":
            _add_references(rows, param, key, node, group)
        elif kind == "date":
            _add_dates(rows, key, node, group)
        elif kind == "quantity":
            _add_quantities(rows, key, node, group)
        elif kind == "number":
            _add_numbers(rows, key, node, group)
        elif kind == "uri":
            _add_uris(rows, key, node, group)


def _add_plain(rows: dict[str, list[tuple]], params: list, resource: dict) -> None:
    for param, walker, first in params:
        if first is not None:  # the elements the walk would start from: is any of them there?
            for name in first:
                if name in resource:
                    break
            else:
                continue
        nodes = walker(resource)
        if nodes:
            add_values(rows, param, param.key, nodes, None)


class Extractor:
    """Per resource type: the compiled walkers of its parameters (built once, reused per write)."""

    def __init__(self, registry: Registry, resource_type: str):
        self.resource_type = resource_type
        #: (parameter, walker, top-level elements it starts from or None)
        self.plain: list[tuple[SearchParam, object, tuple | None]] = []
        self.composite: list[tuple[SearchParam, object, list]] = []
        # the type's choice elements and their JSON names (data/elements.json; None for a type R4 lacks)
        choices = registry.elements.get(resource_type, {}).get("choices")
        for param in registry.params(resource_type):
            if param.code in ("_id", "_lastUpdated") or param.type == "special":
                continue
            root = resource_type if param.owner != "Resource" else "Resource"
            walker = compile_expression(param.expression, root)
            if param.type == "composite":
                parts = []
                for i, component in enumerate(param.components):
                    target = registry.component_param(component.definition, resource_type)
                    if target is None or target.type in ("composite", "special"):
                        parts = []
                        break
                    parts.append((target, param.component_key(i), compile_relative(component.expression)))
                if parts:
                    self.composite.append((param, walker, parts))
            else:
                self.plain.append((param, walker, first_elements(param.expression, root, choices)))
        self.reference_params = [plain for plain in self.plain if plain[0].type == "reference"]
        #: for :meth:`rows_batch`: the plain parameters by the top-level elements they start from, and those
        #: whose elements cannot be told (walked for every resource)
        groups: dict[tuple | None, list] = {}
        for plain in self.plain:
            groups.setdefault(plain[2], []).append(plain)
        self.ungrouped = groups.pop(None, [])
        self.groups = list(groups.items())
        self._reference_subsets: dict[frozenset | None, list] = {None: self.reference_params}

    def references(self, resource: dict, keys: frozenset | None = None) -> list[tuple]:
        """The plain reference parameters' rows (as ``rows(...)["reference"]`` has them), for access checks;
        ``keys`` limits them to those parameters (an access rule names two or three of a type's dozen)."""
        params = self._reference_subsets.get(keys)
        if params is None:
            params = [plain for plain in self.reference_params if plain[0].key in keys]
            if len(self._reference_subsets) < 256:
                self._reference_subsets[keys] = params
        rows: dict[str, list[tuple]] = {"reference": [], "token": []}  # a logical reference adds a token row
        _add_plain(rows, params, resource)
        return rows["reference"]

    def rows(self, id: str, resource: dict, last_updated: str | None, id_row: bool = True) -> dict[str, list[tuple]]:
        """Index rows by value kind; ``id_row``: include ``_id`` as a token row (a store that matches ids on its
        own table of resources leaves it out)."""
        rows = _fixed_rows(id, date_range(last_updated) if last_updated else None, id_row)
        _add_plain(rows, self.plain, resource)
        self._add_composites(rows, resource)
        return rows

    def rows_batch(self, items: list[tuple[str, dict, str | None]], id_row: bool = True) -> list[dict]:
        """:meth:`rows` of many resources, each (id, resource, last_updated), in their order.

        Resources written together often share elements: the AuditEvents of one client name the same agent,
        type and source. The parameters that start from the same top-level elements are walked once per
        distinct value of those elements (told apart by their JSON text, so ``1.0`` is not ``1.00``) and
        their rows reused; the rows are the same as :meth:`rows` gives, perhaps in another order."""
        memo: dict[tuple, list] = {}
        updated: dict[str | None, tuple | None] = {}  # the batch's resources often share their lastUpdated
        batch = []
        for id, resource, last_updated in items:
            if last_updated not in updated:
                updated[last_updated] = date_range(last_updated) if last_updated else None
            rows = _fixed_rows(id, updated[last_updated], id_row)
            texts: dict[str, bytes] = {}
            for number, (first, params) in enumerate(self.groups):
                key = None
                for name in first:
                    value = resource.get(name)
                    if value is None:
                        continue
                    if value.__class__ is not str:  # a string is its own key; anything else its JSON text
                        text = texts.get(name)
                        if text is None:
                            text = texts[name] = fjson.dumps(value)
                        value = text
                    key = (number, name, value) if key is None else (key, name, value)
                if key is None:
                    continue  # none of the elements its parameters start from
                produced = memo.get(key)
                if produced is None:
                    found: dict[str, list[tuple]] = {kind: [] for kind in KINDS}
                    _add_plain(found, params, resource)
                    produced = memo[key] = [(kind, values) for kind, values in found.items() if values]
                for kind, values in produced:
                    rows[kind].extend(values)
            _add_plain(rows, self.ungrouped, resource)
            self._add_composites(rows, resource)
            batch.append(rows)
        return batch

    def _add_composites(self, rows: dict, resource: dict) -> None:
        group = 0
        for param, walker, parts in self.composite:
            for node in walker(resource):
                group += 1
                for target, key, sub in parts:
                    add_values(rows, target, key, sub(node), group)


def _fixed_rows(id: str, updated: tuple | None, id_row: bool) -> dict[str, list[tuple]]:
    """A resource's rows by kind, holding those of ``_id`` (``id_row``) and ``_lastUpdated`` (``updated``: its
    range) so far."""
    rows: dict[str, list[tuple]] = {kind: [] for kind in KINDS}
    if id_row:
        rows["token"].append((ID_KEY, None, id, None, None))
    if updated:
        rows["date"].append((LAST_UPDATED_KEY, updated[0], updated[1], None))
    return rows


class Extraction:
    """Extractors for every type, compiled lazily on first write of that type."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self._extractors: dict[str, Extractor] = {}

    def extractor(self, resource_type: str) -> Extractor:
        extractor = self._extractors.get(resource_type)
        if extractor is None:
            extractor = self._extractors[resource_type] = Extractor(self.registry, resource_type)
        return extractor

    def rows(self, resource_type: str, id: str, resource: dict, last_updated: str | None = None,
             id_row: bool = True) -> dict:
        return self.extractor(resource_type).rows(id, resource, last_updated, id_row)

    def references(self, resource_type: str, resource: dict, keys: frozenset | None = None) -> list[tuple]:
        return self.extractor(resource_type).references(resource, keys)
