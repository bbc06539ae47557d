import pytest

from fhir_server.mapping.transforms import InvalidValue, fhir_to_v2_datetime, to_boolean, to_decimal, v2_datetime


@pytest.mark.parametrize("value,expected", [
    ("2026", "2026"), ("202611", "2026-11"), ("20261123", "2026-11-23"),
    ("202611230930", "2026-11-23T09:30:00+08:00"), ("20261123093015", "2026-11-23T09:30:15+08:00"),
    ("20261123093015.123", "2026-11-23T09:30:15.123+08:00"), ("20261123093015+0000", "2026-11-23T09:30:15+00:00"),
    ("2026112309-0500", "2026-11-23T09:00:00-05:00"),
])
def test_hl7_dates_to_fhir(value, expected):
    assert v2_datetime(value) == expected


def test_default_offset_is_configurable_and_dates_stay_dates():
    assert v2_datetime("202611230930", "+09:00") == "2026-11-23T09:30:00+09:00"
    assert v2_datetime("20261123093000", precision="date") == "2026-11-23"
    assert v2_datetime("20261123", precision="dateTime") == "2026-11-23"


@pytest.mark.parametrize("value", ["20261323", "20260230", "2026112325", "20261123096000", "2026-11-23", "abc", "20261123+2500"])
def test_invalid_dates(value):
    with pytest.raises(InvalidValue):
        v2_datetime(value)


def test_instant_needs_a_time():
    with pytest.raises(InvalidValue):
        v2_datetime("20261123", precision="instant")


def test_reverse_dates_and_numbers():
    assert fhir_to_v2_datetime("2026-11-23T09:30:00+08:00") == "20261123093000+0800"
    assert fhir_to_v2_datetime("2026-11-23") == "20261123"
    assert fhir_to_v2_datetime("2026-11-23T01:30:00Z") == "20261123013000+0000"
    assert str(to_decimal("0.50")) == "0.50"
    assert to_boolean("Y") is True and to_boolean("n") is False
    with pytest.raises(InvalidValue):
        to_decimal("NaN")
