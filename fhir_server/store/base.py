"""The storage protocol every backend implements, and the record it hands back.

The REST layer decides ids, versions and meta; a backend only persists what it is given,
atomically: the current row, the history row and the search-index rows of one write
land together or not at all, and everything inside one write session is one transaction.
Backends never parse or re-serialise resource JSON beyond extracting index values.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class VersionConflict(Exception):
    """The resource's current version is not the one the writer expected."""


@dataclass(frozen=True, slots=True)
class StoredResource:
    resource_type: str
    id: str
    version: int
    #: FHIR instant in UTC, e.g. ``2026-11-23T17:28:42.123456Z``
    last_updated: str
    deleted: bool
    #: the resource JSON exactly as stored (with server-set id and meta); empty for a deletion
    body: bytes
    #: the interaction that produced this version: POST, PUT, PATCH or DELETE
    method: str = "PUT"


class Session(Protocol):
    """Operations inside one unit of work (one transaction for a write session)."""

    def read(self, resource_type: str, id: str) -> StoredResource | None:
        """The current version, including a deletion tombstone; None if never written."""

    def vread(self, resource_type: str, id: str, version: int) -> StoredResource | None: ...

    def write(self, record: StoredResource, resource: dict | None, expected_version: int) -> None:
        """Persist a new version (or tombstone when ``record.deleted``).

        ``expected_version`` is the current version the caller based this write on (0 for a
        new resource); a mismatch raises VersionConflict and nothing is written.
        ``resource`` is the parsed body, for index extraction (None for deletions).
        """

    def create_many(self, prepared: Any) -> int:
        """Create many new resources at once, as :meth:`Store.prepare_new` made them ready; one whose type
        and id are stored already is left as it is. Returns how many were written. For records the
        server keeps in bulk (AuditEvents): no version checks beyond that, no hooks, no listeners."""

    def history(
        self,
        resource_type: str | None = None,
        id: str | None = None,
        since: str | None = None,
        count: int = 20,
        offset: int = 0,
        at_or_before: int | None = None,
    ) -> tuple[list[StoredResource], int]:
        """Versions newest first, and the total; ``at_or_before`` pins a stable snapshot (sequence number)."""

    def search(self, query: Any) -> Any:
        """Run a parsed search (see fhir_server.search) and return its page of results."""

    # The audit journal: request records stored as they come (one cheap row each) and turned into
    # indexed AuditEvent resources later (see fhir_server.security.audit).

    def append_audit_records(self, records: list[bytes]) -> None:
        """Append opaque records to the audit journal (durable with the session's commit)."""

    def pending_audit_records(self, limit: int) -> list[tuple[Any, bytes]]:
        """The oldest journal records, as (position, record)."""

    def remove_audit_records(self, positions: list[Any]) -> None:
        """Drop journal records by position (once their AuditEvents are written)."""

    def count_audit_records(self) -> int: ...


class Store(Protocol):
    def session(self, write: bool = False) -> AbstractContextManager[Session]:
        """A unit of work; a write session is one all-or-nothing transaction."""

    def prepare_new(self, items: list[tuple[StoredResource, dict]]) -> Any:
        """Whatever :meth:`Session.create_many` needs of new resources (version 1), each (record, resource),
        that no transaction needs to hold: built first, so a write session holds the store briefly."""

    def close(self) -> None: ...
