"""Server-assigned ids (fhir_server/repository.py)."""

import time
import uuid

from fhir_server.repository import new_id, valid_id


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
