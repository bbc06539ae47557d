"""A fast evaluator for the FHIRPath subset profile invariants use, with fhirpathpy behind it.

fhirpathpy interprets its parse tree with full type information on every call (~100-200 µs for a
one-line invariant), which is most of the cost of validating a referral. Invariants are short and
stylised (``status != 'active' or extension('…').exists()``), so they are compiled here into Python
closures over plain dicts: paths, ``extension(url)``, ``where``/``all``/``exists``/``empty``/``not``/
``count``/``first``/``matches``, ``ofType`` right after a choice element, literals, comparisons and
three-valued ``and``/``or``/``xor``/``implies``. Anything else — at compile time an unknown
construct, at run time a comparison whose FHIRPath semantics are subtle (dates of different
precision, collections of several booleans) — is handed to fhirpathpy, so the result is always
fhirpathpy's; a test checks the two agree on every IG invariant and example.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Callable

from fhirpathpy import compile as fhirpathpy_compile
from fhirpathpy.models import models

Evaluator = Callable[[list, Any], list]

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>\d+(?:\.\d+)?)|(?P<op><=|>=|!=|[=<>().,|])"
    r"|(?P<name>\$this|[A-Za-z_][A-Za-z0-9_]*|`[^`]+`))"
)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_DATE_LIKE = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T.*)?)?)?$")
_KEYWORDS = frozenset(("and", "or", "xor", "implies", "true", "false"))


class Unsupported(Exception):
    """The expression (or this evaluation of it) is outside the fast subset."""


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    expression = expression.strip()
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if not match or match.end() == position:
            raise Unsupported(f"cannot tokenise at {expression[position:]!r}")
        position = match.end()
        kind = match.lastgroup
        text = match.group(kind)
        if kind == "string":
            text = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1])
        elif kind == "name" and text.startswith("`"):
            text = text[1:-1]
        tokens.append((kind, text))
    return tokens


def _truth(collection: list) -> bool | None:
    if not collection:
        return None
    if len(collection) == 1:
        value = collection[0]
        return value if isinstance(value, bool) else True
    raise Unsupported("boolean of a collection of several items")


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, bool) or isinstance(right, bool):
        if type(left) is not type(right):
            raise Unsupported("comparison of a boolean with another type")
        return left, right
    if isinstance(left, (int, float, Decimal)) and isinstance(right, (int, float, Decimal)):
        return Decimal(str(left)), Decimal(str(right))
    if isinstance(left, str) and isinstance(right, str):
        if _DATE_LIKE.match(left) and _DATE_LIKE.match(right) and len(left) != len(right):
            raise Unsupported("dates of different precision")
        return left, right
    raise Unsupported("comparison of mixed or complex types")


def _navigate(items: list, name: str) -> list:
    result = []
    for item in items:
        if not isinstance(item, dict):
            continue
        value = item.get(name)
        if value is None:
            for key in item:
                if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
                    raise Unsupported("navigation into a choice element without ofType")
            continue
        if isinstance(value, list):
            result.extend(value)
        else:
            result.append(value)
    return result


class _Parser:
    def __init__(self, expression: str):
        self.tokens = _tokens(expression)
        self.at = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, text: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (text is not None and token[1] != text):
            raise Unsupported(f"expected {text!r}")
        self.at += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token and token[0] == "name" and token[1] in words:
            self.at += 1
            return token[1]
        return None

    def parse(self) -> Evaluator:
        evaluator = self.implies()
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return evaluator

    def implies(self) -> Evaluator:
        left = self.disjunction()
        while self.keyword("implies"):
            right = self.disjunction()
            left = _implies(left, right)
        return left

    def disjunction(self) -> Evaluator:
        left = self.conjunction()
        while True:
            word = self.keyword("or", "xor")
            if not word:
                return left
            left = _or(left, self.conjunction()) if word == "or" else _xor(left, self.conjunction())

    def conjunction(self) -> Evaluator:
        left = self.equality()
        while self.keyword("and"):
            left = _and(left, self.equality())
        return left

    def equality(self) -> Evaluator:
        left = self.comparison()
        while self.peek() and self.peek()[1] in ("=", "!="):
            negate = self.take()[1] == "!="
            left = _equals(left, self.comparison(), negate)
        return left

    def comparison(self) -> Evaluator:
        left = self.union()
        while self.peek() and self.peek()[1] in ("<", ">", "<=", ">="):
            left = _compare_op(left, self.take()[1], self)
        return left

    def union(self) -> Evaluator:
        left = self.path()
        while self.peek() and self.peek()[1] == "|":
            self.take()
            left = _union(left, self.path())
        return left

    def path(self) -> Evaluator:
        steps = [self.term()]
        while self.peek() and self.peek()[1] == ".":
            self.take()
            name = self.take()
            if name[0] != "name":
                raise Unsupported("expected a name after '.'")
            steps.append(self.invocation(name[1], steps))
        steps = [s for s in steps if s is not None]
        if len(steps) == 1:
            return steps[0]  # keeps a bare name's attributes (ofType reads them)

        def evaluate(focus: list, root: Any) -> list:
            for step in steps:
                focus = step(focus, root)
            return focus

        return evaluate

    def term(self) -> Evaluator | None:
        token = self.peek()
        if token is None:
            raise Unsupported("unexpected end")
        kind, text = token
        if kind == "string":
            self.take()
            return lambda focus, root, v=text: [v]
        if kind == "number":
            self.take()
            value = Decimal(text) if "." in text else int(text)
            return lambda focus, root, v=value: [v]
        if text == "(":
            self.take()
            inner = self.implies()
            self.take(")")
            return lambda focus, root: inner(focus, root)
        if kind == "name" and text in ("true", "false"):
            self.take()
            return lambda focus, root, v=(text == "true"): [v]
        if kind == "name" and text == "$this":
            self.take()
            return lambda focus, root: focus
        if kind == "name" and text not in _KEYWORDS:
            self.take()
            return self.invocation(text, [])
        raise Unsupported(f"unexpected {text!r}")

    def arguments(self) -> list[Evaluator]:
        self.take("(")
        arguments = []
        if self.peek() and self.peek()[1] == ")":
            self.take()
            return arguments
        while True:
            arguments.append(self.implies())
            if self.take()[1] == ")":
                return arguments

    def invocation(self, name: str, steps: list) -> Evaluator | None:
        if not (self.peek() and self.peek()[1] == "("):
            return _navigation(name)
        arguments = self.arguments()
        if name == "ofType":
            # only right after a choice element: X.value.ofType(Coding) is the JSON property valueCoding
            previous = steps[-1] if steps else None
            element = getattr(previous, "element_name", None)
            type_name = getattr(arguments[0], "type_name", None) if len(arguments) == 1 else None
            if element is None or type_name is None:
                raise Unsupported("ofType outside a choice element")
            steps[-1] = _member(element + type_name[0].upper() + type_name[1:])
            return None
        return _function(name, arguments)


def _navigation(name: str) -> Evaluator:
    def evaluate(focus: list, root: Any) -> list:
        return _navigate(focus, name)

    # as a step before ofType the name is the choice element; as ofType's argument, the type
    evaluate.element_name = evaluate.type_name = name  # type: ignore[attr-defined]
    return evaluate


def _member(name: str) -> Evaluator:
    def evaluate(focus: list, root: Any) -> list:
        result = []
        for item in focus:
            if isinstance(item, dict) and name in item:
                value = item[name]
                result.extend(value) if isinstance(value, list) else result.append(value)
        return result

    return evaluate


def _function(name: str, arguments: list[Evaluator]) -> Evaluator:
    count = len(arguments)
    if name == "exists" and count <= 1:
        if count == 0:
            return lambda focus, root: [bool(focus)]
        criterion = arguments[0]
        return lambda focus, root: [any(_truth(criterion([item], root)) for item in focus)]
    if name == "empty" and count == 0:
        return lambda focus, root: [not focus]
    if name == "not" and count == 0:
        def negate(focus: list, root: Any) -> list:
            value = _truth(focus)
            return [] if value is None else [not value]
        return negate
    if name == "count" and count == 0:
        return lambda focus, root: [len(focus)]
    if name == "first" and count == 0:
        return lambda focus, root: focus[:1]
    if name == "where" and count == 1:
        criterion = arguments[0]
        return lambda focus, root: [item for item in focus if _truth(criterion([item], root)) is True]
    if name == "all" and count == 1:
        criterion = arguments[0]
        return lambda focus, root: [all(_truth(criterion([item], root)) is True for item in focus)]
    if name == "extension" and count == 1:
        url_of = arguments[0]

        def extension(focus: list, root: Any) -> list:
            [url] = url_of([], root) or [None]
            return [e for e in _navigate(focus, "extension") if isinstance(e, dict) and e.get("url") == url]

        return extension
    if name == "matches" and count == 1:
        pattern_of = arguments[0]

        def matches(focus: list, root: Any) -> list:
            if not focus:
                return []
            if len(focus) > 1 or not isinstance(focus[0], str):
                raise Unsupported("matches on a non-string")
            [pattern] = pattern_of([], root)
            return [re.search(pattern, focus[0], re.DOTALL) is not None]

        return matches
    raise Unsupported(f"function {name}({count} arguments)")


def _and(left: Evaluator, right: Evaluator) -> Evaluator:
    def evaluate(focus: list, root: Any) -> list:
        a, b = _truth(left(focus, root)), _truth(right(focus, root))
        if a is False or b is False:
            return [False]
        return [True] if a is True and b is True else []
    return evaluate


def _or(left: Evaluator, right: Evaluator) -> Evaluator:
    def evaluate(focus: list, root: Any) -> list:
        a, b = _truth(left(focus, root)), _truth(right(focus, root))
        if a is True or b is True:
            return [True]
        return [False] if a is False and b is False else []
    return evaluate


def _xor(left: Evaluator, right: Evaluator) -> Evaluator:
    def evaluate(focus: list, root: Any) -> list:
        a, b = _truth(left(focus, root)), _truth(right(focus, root))
        return [] if a is None or b is None else [a != b]
    return evaluate


def _implies(left: Evaluator, right: Evaluator) -> Evaluator:
    def evaluate(focus: list, root: Any) -> list:
        a = _truth(left(focus, root))
        if a is False:
            return [True]
        b = _truth(right(focus, root))
        if a is True:
            return [] if b is None else [b]
        return [True] if b is True else []
    return evaluate


def _equals(left: Evaluator, right: Evaluator, negate: bool) -> Evaluator:
    def evaluate(focus: list, root: Any) -> list:
        a, b = left(focus, root), right(focus, root)
        if not a or not b:
            return []
        if len(a) != 1 or len(b) != 1:
            raise Unsupported("equality of collections")
        x, y = a[0], b[0]
        if isinstance(x, (dict, list)) or isinstance(y, (dict, list)):
            raise Unsupported("equality of complex values")
        try:
            x, y = _comparable(x, y)
            same = x == y
        except Unsupported:
            if isinstance(x, str) != isinstance(y, str) or isinstance(x, bool) != isinstance(y, bool):
                same = False  # different kinds of value are never equal
            else:
                raise
        return [same != negate]
    return evaluate


def _compare_op(left: Evaluator, operator: str, parser: _Parser) -> Evaluator:
    right = parser.union()

    def evaluate(focus: list, root: Any) -> list:
        a, b = left(focus, root), right(focus, root)
        if not a or not b:
            return []
        if len(a) != 1 or len(b) != 1:
            raise Unsupported("comparison of collections")
        x, y = _comparable(a[0], b[0])
        if operator == "<":
            return [x < y]
        if operator == ">":
            return [x > y]
        if operator == "<=":
            return [x <= y]
        return [x >= y]

    return evaluate


def _union(left: Evaluator, right: Evaluator) -> Evaluator:
    def evaluate(focus: list, root: Any) -> list:
        result = []
        for item in left(focus, root) + right(focus, root):
            if item not in result:
                result.append(item)
        return result
    return evaluate


def compile_invariant(expression: str) -> Callable[[Any], list]:
    """``f(resource) → list`` with fhirpathpy's result; fast where the expression allows it."""
    fallback = fhirpathpy_compile(expression, models["r4"])
    try:
        fast = _Parser(expression).parse()
    except Unsupported:
        return fallback

    def evaluate(resource: Any) -> list:
        try:
            return fast([resource], resource)
        except Unsupported:
            return fallback(resource)

    evaluate.fast = True  # type: ignore[attr-defined]
    return evaluate
