"""Value normalisation shared by extraction and query parsing (so both sides agree).

Strings: case- and accent-insensitive form. Dates: precision-aware ranges in integer
microseconds since the epoch (UTC; a value without a zone is read as UTC). Numbers:
the implicit range of a decimal's written precision.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from decimal import Decimal, InvalidOperation

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


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DAY = 86_400_000_000
#: 10000-01-01 in µs since 1970-01-01 (2,932,897 days): a range reaching it is open-ended
_END = 2_932_897 * _DAY


def _days(y: int, m: int, d: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (Hinnant's days_from_civil);
    ValueError for a date that does not exist. Arithmetic, not ``datetime``: a date index row
    is computed for every date in every write."""
    if not (1 <= m <= 12 and 1 <= d <= (29 if m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
                                        else _MONTH_DAYS[m - 1])) or y < 1:
        raise ValueError("no such date")
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def _offset_micros(zone: str | None) -> int:
    if not zone or zone == "Z":
        return 0
    digits = zone[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    if minutes >= 24 * 60:
        raise ValueError("offset out of range")
    return (-1 if zone[0] == "-" else 1) * minutes * 60_000_000


def date_range(text: str) -> tuple[int, int] | None:
    """[low, high] (inclusive, µs since epoch) covered by a FHIR date/dateTime/instant, or None if malformed.

    A range reaching the end of year 9999 is open: its high is ``MAX_TIME``."""
    match = _DATE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    y = int(year)
    try:
        if month is None:
            low, end = _days(y, 1, 1), _days(y + 1, 1, 1) * _DAY
        else:
            m = int(month)
            if day is None:
                low = _days(y, m, 1)
                end = (_days(y + 1, 1, 1) if m == 12 else _days(y, m + 1, 1)) * _DAY
            else:
                low = _days(y, m, int(day))
                end = (low + 1) * _DAY
        low *= _DAY
        if hour is not None:
            if minute is None:
                return None
            h, mi, s = int(hour), int(minute), int(second or 0)
            if h > 23 or mi > 59 or s > 59:
                return None
            low += ((h * 60 + mi) * 60 + s) * 1_000_000
            if second is None:
                width = 60_000_000
            elif fraction:
                digits = fraction[1:7]
                low += int(digits.ljust(6, "0"))
                width = 10 ** (6 - len(digits))
            else:
                width = 1_000_000
            end = low + width
            offset = _offset_micros(zone)
            low, end = low - offset, (end - offset if end < _END else end)
    except ValueError:
        return None
    return low, (end - 1 if end < _END else MAX_TIME)


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
