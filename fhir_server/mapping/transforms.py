"""Scalar value transforms shared by the HL7 v2 and XML mappings: dates, numbers, booleans.

HL7 v2 DTM and HL7 v3 TS share one format (``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``).
Times without an offset take the configured default offset (China: +08:00); date-only
values stay dates, because inventing midnight would invent precision.
"""

from __future__ import annotations

import calendar
import re
from decimal import Decimal, InvalidOperation

_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?)?\s*([+-]\d{4})?\Z")


class InvalidValue(ValueError):
    """A value that does not fit the declared type."""


def _check_date(year: int, month: int | None, day: int | None) -> None:
    if month is not None and not 1 <= month <= 12:
        raise InvalidValue(f"month {month} out of range")
    if day is not None and not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise InvalidValue(f"day {day} out of range for {year}-{month:02d}")


def _offset(text: str | None, default: str) -> str:
    if not text:
        return default
    hours, minutes = int(text[1:3]), int(text[3:5])
    if hours > 14 or minutes > 59:
        raise InvalidValue(f"time-zone offset {text} out of range")
    return f"{text[0]}{text[1:3]}:{text[3:5]}"


def v2_datetime(value: str, default_offset: str = "+08:00", precision: str = "dateTime") -> str:
    """HL7 DTM/TS text → FHIR date, dateTime or instant text."""
    match = _TS.match(value.strip())
    if not match:
        raise InvalidValue(f"{value!r} is not an HL7 date/time (YYYY[MM[DD[HH[MM[SS]]]]][+/-ZZZZ])")
    year_s, month_s, day_s, hour_s, minute_s, second_s, fraction, zone = match.groups()
    year = int(year_s)
    month = int(month_s) if month_s else None
    day = int(day_s) if day_s else None
    if day_s and not month_s:
        raise InvalidValue(f"{value!r} is not an HL7 date/time")
    _check_date(year, month, day)
    date = year_s + (f"-{month_s}" if month_s else "") + (f"-{day_s}" if day_s else "")
    offset = _offset(zone, default_offset)  # checked even where a date-only value drops it
    if precision == "date" or hour_s is None:
        if precision == "instant":
            raise InvalidValue(f"{value!r} has no time, an instant needs one")
        if hour_s is not None and day_s is None:
            raise InvalidValue(f"{value!r} is not an HL7 date/time")
        return date
    if day_s is None:
        raise InvalidValue(f"{value!r} has a time but no day")
    hour, minute, second = int(hour_s), int(minute_s or 0), int(second_s or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise InvalidValue(f"time in {value!r} out of range")
    text = f"{date}T{hour:02d}:{minute:02d}:{second:02d}"
    if fraction:
        text += "." + fraction
    return text + offset


def fhir_to_v2_datetime(value: str) -> str:
    """FHIR date/dateTime/instant text → HL7 DTM (offset kept, ``Z`` written as +0000)."""
    match = re.match(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?\Z", value)
    if not match:
        raise InvalidValue(f"{value!r} is not a FHIR date/time")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    out = year + (month or "") + (day or "")
    if hour:
        out += hour + minute + (second or "") + (fraction or "")
        if zone:
            out += "+0000" if zone == "Z" else zone.replace(":", "")
    return out


def to_decimal(value: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise InvalidValue(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise InvalidValue(f"{value!r} is not a number")
    return number


def to_integer(value: str) -> int:
    text = value.strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise InvalidValue(f"{value!r} is not an integer")
    return int(text)


def to_boolean(value: str) -> bool:
    text = value.strip().upper()
    if text in ("Y", "YES", "TRUE", "T", "1"):
        return True
    if text in ("N", "NO", "FALSE", "F", "0"):
        return False
    raise InvalidValue(f"{value!r} is not a yes/no value")
