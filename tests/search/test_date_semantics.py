"""Date prefixes against a plain reading of the spec, on generated data (every backend).

Each Observation has one effective value (dateTime at some precision, or a Period, possibly
open); hypothesis draws prefixed search values and the answer must equal the spec's
definitions evaluated directly on the value ranges.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_server.search.bundle import parser_for
from fhir_server.search.values import MAX_TIME, MIN_TIME, date_range
from tests.conftest import BACKENDS, make_store
from tests.search.conftest import load

PREFIXES = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"]


def _text(rnd: random.Random) -> str:
    year, month, day = rnd.randint(2023, 2025), rnd.randint(1, 12), rnd.randint(1, 28)
    shape = rnd.randrange(5)
    if shape == 0:
        return f"{year}"
    if shape == 1:
        return f"{year}-{month:02d}"
    if shape == 2:
        return f"{year}-{month:02d}-{day:02d}"
    zone = rnd.choice(["Z", "+08:00", "-05:00"])
    return f"{year}-{month:02d}-{day:02d}T{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:00{zone}"


def _observations() -> list[tuple[dict, tuple[int, int]]]:
    rnd = random.Random(42)
    found = []
    for i in range(150):
        resource = {"resourceType": "Observation", "id": f"o{i}", "status": "final", "code": {"text": "x"}}
        if rnd.random() < 0.6:
            text = _text(rnd)
            resource["effectiveDateTime"] = text
            found.append((resource, date_range(text)))
        else:
            period, low, high = {}, MIN_TIME, MAX_TIME
            if rnd.random() < 0.85:
                period["start"] = _text(rnd)
                low = date_range(period["start"])[0]
            if rnd.random() < 0.85 or not period:  # a Period holds at least one of start, end
                period["end"] = _text(rnd)
                high = date_range(period["end"])[1]
            if low > high:
                period.pop("end")
                high = MAX_TIME
            resource["effectivePeriod"] = period
            found.append((resource, (low, high)))
    return found


OBSERVATIONS = _observations()


def expected(prefix: str, search: tuple[int, int]) -> set[str]:
    sl, sh = search
    out = set()
    for resource, (tl, th) in OBSERVATIONS:
        eq = tl >= sl and th <= sh
        match = {"eq": eq, "ne": not eq, "gt": th > sh, "lt": tl < sl, "ge": th > sh or eq, "le": tl < sl or eq,
                 "sa": tl > sh, "eb": th < sl}[prefix]
        if match:
            out.add(resource["id"])
    return out


@pytest.fixture(scope="module", params=BACKENDS)
def date_store(request, tmp_path_factory):
    store = make_store(request.param, tmp_path_factory.mktemp("dates"))
    load(store, [resource for resource, _ in OBSERVATIONS])
    yield store
    store.close()


def _search(store, pairs) -> set[str]:
    query = parser_for("http://testserver").parse(["Observation"], pairs, strict=True)
    query.limit_all = 1000
    with store.session() as session:
        return {r.id for r in session.search(query).matches}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(PREFIXES), seed=st.integers(0, 10_000))
def test_single_prefix_matches_the_spec(date_store, prefix, seed):
    text = _text(random.Random(seed))
    assert _search(date_store, [("date", f"{prefix}{text}")]) == expected(prefix, date_range(text))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(low=st.sampled_from(["ge", "gt", "sa"]), high=st.sampled_from(["le", "lt", "eb"]),
       seed=st.integers(0, 10_000))
def test_range_pairs_match_the_spec(date_store, low, high, seed):
    rnd = random.Random(seed)
    first, second = sorted([_text(rnd), _text(rnd)], key=lambda t: date_range(t)[0])
    got = _search(date_store, [("date", f"{low}{first}"), ("date", f"{high}{second}")])
    assert got == expected(low, date_range(first)) & expected(high, date_range(second))
