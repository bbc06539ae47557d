"""The lossless JSON codec keeps decimals as written."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fhir_server.formats import json as fjson


@pytest.mark.parametrize("text", [
    b'{"a":1.50}', b'{"a":[0.10,2,3.000]}', b'{"a":-0.0}', b'{"a":123456789012345678901234567890}',
    b'{"a":"1.50","b":true,"c":null}', b'{"nested":{"v":{"w":9.90}}}',
])
def test_round_trip_is_byte_exact(text):
    assert fjson.dumps(fjson.loads(text)) == text


def test_decimals_parse_as_decimal_only_when_needed():
    assert fjson.loads(b'{"a":1}') == {"a": 1}
    assert fjson.loads(b'{"a":1.5}') == {"a": Decimal("1.5")}


@pytest.mark.parametrize("text", [b"{", b"", b"[NaN]", b'{"a":Infinity}', b"\xff"])
def test_malformed_raises_decode_error(text):
    with pytest.raises(fjson.JSONDecodeError):
        fjson.loads(text)


def test_pretty():
    assert fjson.dumps({"a": [1]}, pretty=True) == b'{\n  "a": [\n    1\n  ]\n}'
