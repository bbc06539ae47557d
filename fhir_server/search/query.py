"""Parse search parameters into a typed, backend-neutral expression.

The parsed :class:`SearchQuery` is what every store backend compiles (SQL for SQLite, a
query document for MongoDB). Values are parsed once here, with the same normalisation
extraction used, so a backend only compares. User input never becomes query text: it is
carried as typed values and bound as parameters by the backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterable, Union

from fhir_server.errors import FhirError, issue

from .registry import COMMON, Registry, SearchParam
from .values import date_range, decimal_range, normalize, parse_decimal

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
#: parameters that shape the result rather than select resources
RESULT_PARAMS = frozenset((
    "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained",
    "_containedType", "_format", "_pretty", "_cursor", "_type",
))
#: accepted and ignored: they affect the response envelope only
PASSIVE_PARAMS = frozenset(("_format", "_pretty", "_contained", "_containedType"))
MODIFIERS = {
    "string": ("exact", "contains", "missing"),
    "token": ("not", "text", "of-type", "in", "not-in", "missing"),
    "reference": ("identifier", "missing"),
    "date": ("missing",),
    "number": ("missing",),
    "quantity": ("missing",),
    "uri": ("below", "above", "missing"),
    "composite": ("missing",),
}
#: an id is a plain code: no text, no value sets
_ID_MODIFIERS = ("not", "missing")
#: most codes a ``:in``/``:not-in`` value set may hold (each is a bound SQL parameter)
MAX_CODE_SET = 10000
SUMMARY_MODES = ("true", "false", "text", "data", "count")
TOTAL_MODES = ("none", "estimate", "accurate")


class InvalidParameter(Exception):
    """A parameter that cannot be used: unknown, unsupported, or with a malformed value."""

    def __init__(self, name: str, message: str, unknown: bool = False):
        super().__init__(message)
        self.name = name
        self.unknown = unknown


# --- typed values -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TokenValue:
    #: None: any system; "": no system (``|code``)
    system: str | None
    #: None: any code (``system|``)
    code: str | None


@dataclass(frozen=True, slots=True)
class CodeSetValue:
    """The codes of a value set (``:in``/``:not-in``): per system, the codes it holds. An index row
    without a system matches by code (elements of type ``code`` carry none)."""

    url: str
    codes: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class OfTypeValue:
    system: str | None
    code: str
    value: str


@dataclass(frozen=True, slots=True)
class StringValue:
    text: str
    #: normalised like the index (case- and accent-folded)
    normalized: str


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class NumberValue:
    prefix: str
    value: Decimal
    #: implicit precision range [low, high) of the written value
    low: Decimal
    high: Decimal


@dataclass(frozen=True, slots=True)
class QuantityValue:
    prefix: str
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    type: str | None
    id: str | None
    #: absolute or canonical URL (when not a reference to this server)
    url: str | None


@dataclass(frozen=True, slots=True)
class UriValue:
    uri: str


@dataclass(frozen=True, slots=True)
class CompositeValue:
    #: one (component parameter, component key, value) per component
    parts: tuple


@dataclass(frozen=True, slots=True)
class MissingValue:
    missing: bool


Value = Union[TokenValue, OfTypeValue, StringValue, DateValue, NumberValue, QuantityValue, ReferenceValue,
              UriValue, CompositeValue, MissingValue]


# --- conditions ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Clause:
    """One parameter occurrence: matches when any of its values matches (OR)."""

    param: SearchParam
    modifier: str | None
    values: tuple
    #: the index key the values are compared against (derived keys for :identifier, :of-type)
    key: int = 0


@dataclass(frozen=True, slots=True)
class Chain:
    """``ref.param=…`` / ``ref:Type.param=…``: some target of ``param`` satisfies a condition."""

    param: SearchParam
    #: (target type, condition on that type), one per possible target type
    targets: tuple


@dataclass(frozen=True, slots=True)
class Has:
    """``_has:Type:ref:param=…``: some ``Type`` resource referring here by ``ref`` satisfies a condition."""

    source_type: str
    param: SearchParam
    condition: object


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one condition holds (compartment membership)."""

    conditions: tuple


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every condition holds (access-policy restrictions ANDed inside chains and _has)."""

    conditions: tuple


Condition = Union[Clause, Chain, Has, AnyOf, AllOf]


@dataclass(frozen=True, slots=True)
class SortKey:
    param: SearchParam
    descending: bool


@dataclass(frozen=True, slots=True)
class Include:
    """``_include`` (forward) or ``_revinclude`` (reverse) over a reference parameter."""

    source_type: str
    #: None for ``Type:*``
    param: SearchParam | None
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass(slots=True)
class SearchQuery:
    resource_types: tuple[str, ...]
    conditions: list = field(default_factory=list)
    sort: tuple[SortKey, ...] = ()
    count: int = 20
    cursor: str | None = None
    total: str = "accurate"
    summary: str | None = None
    elements: list[str] | None = None
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    #: URL prefix of this server, so absolute references to it compare as relative ones
    base_url: str = ""
    #: (name, value) pairs actually applied, for the Bundle's self link
    used: list = field(default_factory=list)
    #: OperationOutcome issues for parameters ignored under lenient handling
    ignored: list = field(default_factory=list)
    #: most results the backend may return (None: paging applies)
    limit_all: int | None = None

    @property
    def covered_types(self) -> tuple[str, ...]:
        """The types the search looks at: those named, or every type when none is (``GET /?…``)."""
        if self.resource_types:
            return self.resource_types
        from fhir_server.resource_types import RESOURCE_TYPES

        return tuple(sorted(RESOURCE_TYPES))


# --- value parsing ------------------------------------------------------------------------------

def split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash, keeping escapes for a later unescape."""
    if "\\" not in text:
        return text.split(sep)
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ",|$\\":
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _prefix(name: str, text: str, allowed: Iterable[str] = PREFIXES) -> tuple[str, str]:
    if len(text) > 2 and text[:2] in allowed and not text[:2].isdigit():
        return text[:2], text[2:]
    return "eq", text


def _token(raw: str) -> TokenValue:
    parts = split_unescaped(raw, "|")
    if len(parts) == 1:
        return TokenValue(None, unescape(raw))
    system, code = unescape(parts[0]), unescape("|".join(parts[1:]))
    return TokenValue(system, code or None)


def parse_value(name: str, param: SearchParam, modifier: str | None, raw: str, registry: Registry,
                owner: str, base_url: str):
    kind = param.type
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise InvalidParameter(name, f"{name}: :missing takes true or false, not {raw!r}")
        return MissingValue(raw == "true")
    if raw == "":
        raise InvalidParameter(name, f"{name}: empty value")
    if kind == "token":
        if modifier == "text":
            text = unescape(raw)
            return StringValue(text, normalize(text))
        if modifier == "of-type":
            parts = [unescape(p) for p in split_unescaped(raw, "|")]
            if len(parts) != 3 or not parts[1] or not parts[2]:
                raise InvalidParameter(name, f"{name}: :of-type takes system|code|value")
            return OfTypeValue(parts[0] or None, parts[1], parts[2])
        return _token(raw)
    if kind == "string":
        text = unescape(raw)
        return StringValue(text, normalize(text))
    if kind == "date":
        prefix, text = _prefix(name, raw)
        rng = date_range(text)
        if rng is None:
            raise InvalidParameter(name, f"{name}: {raw!r} is not a valid date")
        return DateValue(prefix, rng[0], rng[1])
    if kind in ("number", "quantity"):
        prefix, text = _prefix(name, raw)
        parts = [unescape(p) for p in split_unescaped(text, "|")] if kind == "quantity" else [text]
        number = parse_decimal(parts[0])
        if number is None or (kind == "quantity" and len(parts) not in (1, 3)):
            raise InvalidParameter(name, f"{name}: {raw!r} is not a valid {kind}")
        low, high = decimal_range(number)
        if kind == "number":
            return NumberValue(prefix, number, low, high)
        system, code = (parts[1] or None, parts[2] or None) if len(parts) == 3 else (None, None)
        return QuantityValue(prefix, number, low, high, system, code)
    if kind == "reference":
        if modifier == "identifier":
            return _token(raw)
        return parse_reference(unescape(raw), modifier, base_url)
    if kind == "uri":
        return UriValue(unescape(raw))
    if kind == "composite":
        pieces = split_unescaped(raw, "$")
        if len(pieces) != len(param.components):
            raise InvalidParameter(name, f"{name}: expects {len(param.components)} $-separated components")
        parts = []
        for i, (piece, component) in enumerate(zip(pieces, param.components)):
            target = registry.component_param(component.definition, owner)
            if target is None:
                raise InvalidParameter(name, f"{name}: component {i} is not supported")
            parts.append((target, param.component_key(i), parse_value(name, target, None, piece, registry, owner,
                                                                        base_url)))
        return CompositeValue(tuple(parts))
    raise InvalidParameter(name, f"{name}: parameters of type {kind} are not supported", unknown=True)


def parse_reference(text: str, type_modifier: str | None, base_url: str) -> ReferenceValue:
    if base_url and text.startswith(base_url.rstrip("/") + "/"):
        text = text[len(base_url.rstrip("/")) + 1:]
    if "://" in text or text.startswith("urn:"):
        return ReferenceValue(None, None, text.split("|", 1)[0])
    parts = text.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) == 2:
        if type_modifier and parts[0] != type_modifier:
            return ReferenceValue(type_modifier, "\x00never", None)
        return ReferenceValue(parts[0], parts[1], None)
    return ReferenceValue(type_modifier, text, None)


def _code_set(name: str, url: str, stored: Callable[[str], dict | None] | None) -> CodeSetValue:
    """The value set a ``:in``/``:not-in`` names: one of the IG's (or a base one its profiles bind), else one
    stored on this server; one whose codes cannot all be listed is refused."""
    from fhir_server.terminology.registry import ig_terminology

    terminology = ig_terminology()
    expansion = terminology.expansion(url)
    if expansion is None and stored is not None:
        resource = stored(url)
        expansion = terminology.expand_resource(resource) if resource is not None else None
    if expansion is None:
        raise InvalidParameter(name, f"{name}: value set {url!r} is not known to this server")
    if expansion.open_systems:
        raise InvalidParameter(name, f"{name}: value set {url!r} includes codes of "
                                     f"{', '.join(sorted(expansion.open_systems))} that this server cannot list")
    if len(expansion.concepts) > MAX_CODE_SET:
        raise InvalidParameter(name, f"{name}: value set {url!r} holds {len(expansion.concepts)} codes; "
                                     f"at most {MAX_CODE_SET} can be searched at once")
    by_system: dict[str, list[str]] = {}
    for system, code in expansion.concepts:
        by_system.setdefault(system, []).append(code)
    return CodeSetValue(url, tuple((system, tuple(sorted(codes))) for system, codes in sorted(by_system.items())))


# --- parameter parsing --------------------------------------------------------------------------

class Parser:
    """Turns (name, value) pairs into a SearchQuery for one or more resource types."""

    def __init__(self, registry: Registry, base_url: str = "", default_count: int = 20, max_count: int = 1000,
                 value_sets: Callable[[str], dict | None] | None = None):
        self.registry = registry
        self.base_url = base_url.rstrip("/")
        self.default_count = default_count
        self.max_count = max_count
        #: canonical URL → a ValueSet stored on this server, for ``:in`` beyond the IG's value sets
        self.value_sets = value_sets

    def condition(self, resource_type: str, name: str, raw: str):
        """The condition for one ``name=value`` occurrence on ``resource_type``."""
        registry = self.registry
        if name.startswith("_has:"):
            pieces = name.split(":", 3)
            if len(pieces) != 4:
                raise InvalidParameter(name, f"{name}: expected _has:Type:reference:parameter")
            _, source, ref_code, rest = pieces
            ref = registry.get(source, ref_code)
            if ref is None or ref.type != "reference":
                raise InvalidParameter(name, f"{name}: {source}.{ref_code} is not a reference parameter", True)
            if ref.targets and resource_type not in ref.targets:
                raise InvalidParameter(name, f"{name}: {source}.{ref_code} cannot refer to {resource_type}")
            return Has(source, ref, self.condition(source, rest, raw))
        head, dot, rest = name.partition(".")
        code, _, modifier = head.partition(":")
        modifier = modifier or None
        param = registry.get(resource_type, code)
        if param is None:
            raise InvalidParameter(name, f"Unknown search parameter {code!r} for {resource_type}", unknown=True)
        if param.type == "special":
            raise InvalidParameter(name, f"Search parameter {code!r} is not supported", unknown=True)
        type_modifier = modifier if modifier and modifier[:1].isupper() else None
        if dot:
            if param.type != "reference":
                raise InvalidParameter(name, f"{name}: only reference parameters can be chained", unknown=True)
            if modifier and not type_modifier:
                raise InvalidParameter(name, f"{name}: modifier :{modifier} cannot be chained", unknown=True)
            targets = (type_modifier,) if type_modifier else param.targets
            chained, errors = [], []
            for target in targets:
                try:
                    chained.append((target, self.condition(target, rest, raw)))
                except InvalidParameter as exc:
                    errors.append(exc)
            if not chained:
                raise errors[0] if len(errors) == 1 else InvalidParameter(
                    name, f"{name}: {rest!r} is not a parameter of any target of {code}", unknown=True)
            return Chain(param, tuple(chained))
        if type_modifier:
            if param.type != "reference" or (param.targets and type_modifier not in param.targets):
                raise InvalidParameter(name, f"{name}: {type_modifier} is not a target of {code}", unknown=True)
        elif modifier and modifier not in (_ID_MODIFIERS if code == "_id" else MODIFIERS.get(param.type, ())):
            raise InvalidParameter(name, f"Modifier :{modifier} is not supported for {code}", unknown=True)
        if modifier == "of-type" and code != "identifier":
            raise InvalidParameter(name, f"{name}: :of-type applies to identifier parameters", unknown=True)
        key = param.key
        if modifier == "identifier":
            key = param.sub_key("identifier")
        elif modifier == "of-type":
            key = param.sub_key("of-type")
        if modifier in ("in", "not-in"):
            values = tuple(_code_set(name, unescape(part), self.value_sets) for part in split_unescaped(raw, ","))
            return Clause(param, "not" if modifier == "not-in" else None, values, key)
        values = tuple(
            parse_value(name, param, modifier, part, registry, resource_type, self.base_url)
            for part in split_unescaped(raw, ",")
        ) if modifier != "missing" else (parse_value(name, param, modifier, raw, registry, resource_type, ""),)
        return Clause(param, modifier, values, key)

    def parse(self, resource_types: Iterable[str], pairs: Iterable[tuple[str, str]], strict: bool = False,
              compartment=None) -> SearchQuery:
        """Parse ``pairs``; unknown parameters raise under ``strict`` and are reported otherwise."""
        types = tuple(resource_types)
        query = SearchQuery(types, count=self.default_count, base_url=self.base_url)
        if compartment is not None:
            query.conditions.append(compartment)
        for name, raw in pairs:
            try:
                self._apply(query, types, name, raw)
            except InvalidParameter as exc:
                if exc.unknown and not strict:
                    query.ignored.append(issue("warning", "not-supported", str(exc), [exc.name]))
                    continue
                raise FhirError(400, str(exc), "not-supported" if exc.unknown else "invalid", [exc.name]) from None
        return query

    def _apply(self, query: SearchQuery, types: tuple, name: str, raw: str) -> None:
        base = name.split(":", 1)[0]
        if raw == "":
            # an empty value selects nothing: ignored (reported under lenient handling, an error when strict)
            raise InvalidParameter(name, f"{name}: empty value", unknown=True)
        if base in RESULT_PARAMS:
            self._result_param(query, types, name, raw)
        else:
            if len(types) <= 1:
                query.conditions.append(self.condition(types[0] if types else COMMON, name, raw))
            else:
                per_type, errors = [], []
                for rtype in types:
                    try:
                        per_type.append(self.condition(rtype, name, raw))
                    except InvalidParameter as exc:
                        errors.append(exc)
                if not per_type:
                    raise errors[0]
                query.conditions.append(AnyOf(tuple(per_type)))
        query.used.append((name, raw))

    def _result_param(self, query: SearchQuery, types: tuple, name: str, raw: str) -> None:
        base, _, modifier = name.partition(":")
        if base in PASSIVE_PARAMS or base == "_type":
            return
        if base == "_count":
            if not raw.isdigit():
                raise InvalidParameter(name, f"_count must be a non-negative integer, not {raw!r}")
            query.count = min(int(raw), self.max_count)
        elif base == "_cursor":
            query.cursor = raw
            return
        elif base == "_total":
            if raw not in TOTAL_MODES:
                raise InvalidParameter(name, f"_total must be one of {', '.join(TOTAL_MODES)}")
            query.total = raw
        elif base == "_summary":
            if raw not in SUMMARY_MODES:
                raise InvalidParameter(name, f"_summary must be one of {', '.join(SUMMARY_MODES)}")
            query.summary = None if raw == "false" else raw
        elif base == "_elements":
            query.elements = [e.strip() for e in raw.split(",") if e.strip()]
        elif base == "_sort":
            keys = []
            for item in raw.split(","):
                item = item.strip()
                descending = item.startswith("-")
                code = item.lstrip("-")
                param = None
                for rtype in types or (COMMON,):
                    param = self.registry.get(rtype, code)
                    if param is not None:
                        break
                if param is None or param.type in ("composite", "special"):
                    raise InvalidParameter(name, f"Unknown sort parameter {code!r}", unknown=True)
                keys.append(SortKey(param, descending))
            query.sort = tuple(keys)
        elif base in ("_include", "_revinclude"):
            if modifier not in ("", "iterate", "recurse"):
                raise InvalidParameter(name, f"Modifier :{modifier} is not supported for {base}", unknown=True)
            include = self._include(name, raw, base == "_revinclude", bool(modifier))
            if include.reverse:
                query.revincludes += (include,)
            else:
                if not include.iterate and types and include.source_type not in types + ("*",):
                    raise InvalidParameter(name, f"{name}: {include.source_type} is not being searched", True)
                query.includes += (include,)
        else:
            raise InvalidParameter(name, f"Unknown search parameter {name!r}", unknown=True)

    def _include(self, name: str, raw: str, reverse: bool, iterate: bool) -> Include:
        if raw == "*":
            return Include("*", None, None, iterate, reverse)
        pieces = raw.split(":")
        if len(pieces) not in (2, 3):
            raise InvalidParameter(name, f"{name} takes Type:parameter[:targetType]")
        source, code = pieces[0], pieces[1]
        target = pieces[2] if len(pieces) == 3 else None
        if code == "*":
            return Include(source, None, target, iterate, reverse)
        param = self.registry.get(source, code)
        if param is None or param.type != "reference":
            raise InvalidParameter(name, f"{name}: {source}:{code} is not a reference parameter", unknown=True)
        return Include(source, param, target, iterate, reverse)


def compartment_types(registry: Registry, compartment_type: str) -> list[str]:
    """The resource types that are members of a compartment (by its CompartmentDefinition)."""
    return sorted(t for t, codes in registry.compartments.get(compartment_type, {}).items() if codes)


def whole_compartment_condition(registry: Registry, compartment_type: str, compartment_id: str,
                                resource_types: list[str]):
    """Membership of a compartment for a search over several of its types at once (``Patient/1/*``).

    The ``{def}`` rule (the compartment's own resource, by ``_id``) is left out: over several
    types an ``_id`` clause would also match other types' resources that happen to share the id.
    """
    clauses = []
    for resource_type in resource_types:
        condition = compartment_condition(registry, compartment_type, compartment_id, resource_type)
        if condition is not None:
            clauses.extend(c for c in condition.conditions if c.param.code != "_id")
    return AnyOf(tuple(clauses)) if clauses else None


def compartment_condition(registry: Registry, compartment_type: str, compartment_id: str,
                          resource_type: str):
    """The condition selecting ``resource_type`` resources in a compartment, or None if not a member type."""
    codes = registry.compartments.get(compartment_type, {}).get(resource_type)
    if not codes:
        return None
    clauses = []
    for code in codes:
        if code == "{def}":
            clauses.append(Clause(registry.get(resource_type, "_id"), None,
                                  (TokenValue(None, compartment_id),), registry.get(COMMON, "_id").key))
            continue
        param = registry.get(resource_type, code)
        if param is not None and param.type == "reference":
            clauses.append(Clause(param, None, (ReferenceValue(compartment_type, compartment_id, None),), param.key))
    return AnyOf(tuple(clauses)) if clauses else None
