"""Lossless FHIR JSON: decimals keep their written precision (``1.50`` stays ``1.50``).

orjson parses into floats, which would turn ``1.50`` into ``1.5``; the hot path uses
orjson and only falls back to parsing decimals as :class:`decimal.Decimal` when the
document actually holds a non-integer number (or an integer orjson cannot hold).
Decimals are written back with their original text through ``orjson.Fragment``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson


class JSONDecodeError(ValueError):
    """The body is not well-formed JSON."""


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            return True
    return False


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _parse_int(text: str) -> int | Decimal:
    return int(text) if len(text) < 19 else Decimal(text)


def loads(data: bytes | str) -> Any:
    """Parse JSON, keeping decimal numbers exact."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass  # malformed, or an integer beyond 64 bits: the exact parser decides
    else:
        if not _has_float(value):
            return value
    try:
        return json.loads(data, parse_float=Decimal, parse_int=_parse_int, parse_constant=_reject_constant)
    except ValueError as exc:
        raise JSONDecodeError(str(exc)) from None


def _default(value: Any):
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any, pretty: bool = False) -> bytes:
    """Serialise to JSON bytes; Decimals are written as their exact text."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(value, default=_default, option=option)
