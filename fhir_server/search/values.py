"""Value normalisation shared by extraction and query parsing (so both sides agree).

Strings: case- and accent-insensitive form. Dates: precision-aware ranges in integer
microseconds since the epoch (UTC; a value without a zone is read as UTC). Numbers:
the implicit range of a decimal's written precision.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MIN_TIME = -(2**62)
MAX_TIME = 2**62
_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(\.\d+)?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?)?)?)?$"
)


@lru_cache(maxsize=8192)
def normalize(text: str) -> str:
    """Case-folded, accents removed: ``Érica`` and ``erica`` index alike; CJK is unchanged."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _micros(dt: datetime) -> int:
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _tz(text: str | None) -> timezone:
    if not text or text == "Z":
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def date_range(text: str) -> tuple[int, int] | None:
    """[low, high] (inclusive, µs since epoch) covered by a FHIR date/dateTime/instant, or None if malformed."""
    match = _DATE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        y = int(year)
        if month is None:
            low = datetime(y, 1, 1, tzinfo=timezone.utc)
            high = datetime(y + 1, 1, 1, tzinfo=timezone.utc) if y < 9999 else None
        elif day is None:
            m = int(month)
            low = datetime(y, m, 1, tzinfo=timezone.utc)
            high = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=timezone.utc) if y < 9999 or m < 12 else None
        elif hour is None:
            low = datetime(y, int(month), int(day), tzinfo=timezone.utc)
            high = low + timedelta(days=1)
        else:
            tz = _tz(zone)
            if minute is None:
                return None
            low = datetime(y, int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=tz)
            if second is None:
                high = low + timedelta(minutes=1)
            elif fraction:
                digits = fraction[1:7]
                low = low.replace(microsecond=int(digits.ljust(6, "0")))
                high = low + timedelta(microseconds=10 ** (6 - len(digits)))
            else:
                high = low + timedelta(seconds=1)
    except (ValueError, OverflowError):
        return None
    return _micros(low), (_micros(high) - 1 if high is not None else MAX_TIME)


def decimal_range(value: Decimal) -> tuple[Decimal, Decimal]:
    """The implicit range of a number's precision: ``100`` → [99.5, 100.5), ``1.50`` → [1.495, 1.505)."""
    exponent = value.as_tuple().exponent
    half = Decimal(5).scaleb(exponent - 1) if isinstance(exponent, int) else Decimal(0)
    return value - half, value + half


def parse_decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None
