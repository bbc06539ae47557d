"""Normalisation shared by extraction and parsing: strings, date ranges, decimal precision."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from fhir_server.search.values import MAX_TIME, date_range, decimal_range, normalize


def _us(*args, tz=timezone.utc) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp()) * 1_000_000


@pytest.mark.parametrize("text,expected", [("Érica", "erica"), ("ZHANG", "zhang"), ("张三", "张三"),
                                           ("Straße", "strasse"), ("Ｚｈａｎｇ", "zhang")])
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_date_ranges_follow_precision():
    assert date_range("2024") == (_us(2024, 1, 1), _us(2025, 1, 1) - 1)
    assert date_range("2024-02") == (_us(2024, 2, 1), _us(2024, 3, 1) - 1)
    assert date_range("2024-12") == (_us(2024, 12, 1), _us(2025, 1, 1) - 1)
    assert date_range("2024-02-29") == (_us(2024, 2, 29), _us(2024, 3, 1) - 1)
    assert date_range("2024-02-29T10:00:00Z") == (_us(2024, 2, 29, 10), _us(2024, 2, 29, 10, 0, 1) - 1)
    assert date_range("2024-02-29T18:00:00+08:00") == date_range("2024-02-29T10:00:00Z")
    assert date_range("2024-02-29T10:00Z") == (_us(2024, 2, 29, 10), _us(2024, 2, 29, 10, 1) - 1)
    low, high = date_range("2024-02-29T10:00:00.123Z")
    assert high - low == 999
    assert date_range("9999")[1] == MAX_TIME


def test_date_arithmetic_agrees_with_datetime():
    """Every day from 1896 to 2104 (1900, 2000 and 2100 included), at day and second precision."""
    day = datetime(1896, 1, 1, tzinfo=timezone.utc)
    while day.year < 2105:
        text = day.strftime("%Y-%m-%d")
        assert date_range(text) == (_us(day.year, day.month, day.day), _us(day.year, day.month, day.day) - 1
                                    + 86_400_000_000), text
        low = date_range(f"{text}T23:59:58-05:30")[0]
        assert low == int(datetime.fromisoformat(f"{text}T23:59:58-05:30").timestamp()) * 1_000_000, text
        day += timedelta(days=1)
    assert date_range("1900-02")[1] - date_range("1900-02")[0] + 1 == 28 * 86_400_000_000
    assert date_range("2000-02")[1] - date_range("2000-02")[0] + 1 == 29 * 86_400_000_000
    assert date_range("0001-01-01")[0] == int((datetime(1, 1, 1, tzinfo=timezone.utc) - datetime(
        1970, 1, 1, tzinfo=timezone.utc)).total_seconds()) * 1_000_000
    assert date_range("9999-12-31T23:59:59+08:00")[1] == MAX_TIME


@pytest.mark.parametrize("text", ["2024-13", "2024-02-30", "2023-02-29", "1900-02-29", "0000-01-01",
                                  "2024-00", "2024-01-00", "2024-01-01T10:60Z", "2024-01-01T10:00:00+24:00", "24-01-01", "yesterday", "2024-01-01T25:00:00Z", ""])
def test_malformed_dates(text):
    assert date_range(text) is None


def test_decimal_range_uses_written_precision():
    assert decimal_range(Decimal("100")) == (Decimal("99.5"), Decimal("100.5"))
    assert decimal_range(Decimal("1.50")) == (Decimal("1.495"), Decimal("1.505"))
    assert decimal_range(Decimal("1e2")) == (Decimal("50"), Decimal("150"))
