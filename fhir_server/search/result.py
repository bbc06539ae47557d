"""What a backend's ``search`` returns: one page of matches, the included resources and cursors."""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_server.store.base import StoredResource


@dataclass(slots=True)
class SearchResult:
    matches: list[StoredResource] = field(default_factory=list)
    #: resources added by _include/_revinclude (search mode "include")
    included: list[StoredResource] = field(default_factory=list)
    #: number of matches overall (None when _total=none)
    total: int | None = None
    #: opaque backend cursors for the next and previous pages (None: no such page)
    next_cursor: str | None = None
    prev_cursor: str | None = None
