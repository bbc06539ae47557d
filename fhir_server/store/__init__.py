"""Storage behind one narrow protocol; backends are chosen by store URL."""

from __future__ import annotations

from .base import Session, Store, StoredResource, VersionConflict


def open_store(url: str, background: bool = False) -> Store:
    """Open the backend a store URL names (``sqlite:///file`` or ``mongodb://…``); ``background``: for a
    process writing bookkeeping beside the server (see ``SQLiteStore``)."""
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        # sqlite:///relative/path or sqlite:////absolute/path, as SQLAlchemy spells them
        return SQLiteStore(url[len("sqlite:///"):] if url.startswith("sqlite:///") else url[len("sqlite://"):],
                           background=background)
    if url.startswith(("mongodb://", "mongodb+srv://", "mongomock://")):
        from .mongo import MongoStore

        return MongoStore.from_url(url)
    raise ValueError(f"unsupported store URL: {url!r} (use sqlite:///path or mongodb://host/db)")


__all__ = ["open_store", "Session", "Store", "StoredResource", "VersionConflict"]
