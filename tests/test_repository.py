"""Server-assigned ids and instants (fhir_server/repository.py)."""

import time
import uuid
from datetime import datetime, timedelta, timezone

from fhir_server.repository import instant, new_id, now_instant, valid_id


def test_new_ids_are_version_7_uuids_and_valid_fhir_ids():
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert valid_id(value) and str(parsed) == value


def test_new_ids_sort_by_creation_time():
    earlier = new_id()
    time.sleep(0.002)
    later = new_id()
    assert earlier < later
    assert abs(int(later.replace("-", "")[:12], 16) - time.time_ns() // 1_000_000) < 60_000


def test_instants_are_utc_with_microseconds_and_sort_as_text():
    assert instant(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2026-01-02T03:04:05.000000Z"
    assert instant(datetime(2026, 1, 1, 7, 0, 0, 120, tzinfo=timezone(timedelta(hours=8)))) \
        == "2025-12-31T23:00:00.000120Z"
    assert instant(datetime(999, 5, 6, tzinfo=timezone.utc)) == "0999-05-06T00:00:00.000000Z"
    earlier = now_instant()
    time.sleep(0.001)
    assert earlier < now_instant() and len(earlier) == 27
