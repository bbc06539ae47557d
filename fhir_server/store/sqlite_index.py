"""Search-index tables of the SQLite backend and the compilation of parsed searches to SQL.

Placeholder until the search package lands: it keeps no index and answers searches by
scanning current resources of a type (used only for conditional interactions on ``_id``).
"""

from __future__ import annotations


class SQLiteIndex:
    def schema(self) -> list[str]:
        return []

    def write(self, conn, resource_type: str, id: str, resource: dict | None, last_updated: str) -> None:
        """Replace the index rows of one resource (``resource`` None removes them)."""

    def search(self, session, query):
        raise NotImplementedError("search is not available yet")
