"""Storage behind one narrow protocol; backends are chosen by store URL."""

from __future__ import annotations

from .base import Session, Store, StoredResource, VersionConflict


def open_store(url: str, checkpoint_thread: bool = True) -> Store:
    """Open the backend a store URL names (``sqlite:///file`` or ``mongodb://…``); ``checkpoint_thread``:
    SQLite copies its WAL into the database from a thread of its own (see ``checkpointer``)."""
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        # sqlite:///relative/path or sqlite:////absolute/path, as SQLAlchemy spells them
        return SQLiteStore(url[len("sqlite:///"):] if url.startswith("sqlite:///") else url[len("sqlite://"):],
                           checkpoint_thread=checkpoint_thread)
    if url.startswith(("mongodb://", "mongodb+srv://", "mongomock://")):
        from .mongo import MongoStore

        return MongoStore.from_url(url)
    raise ValueError(f"unsupported store URL: {url!r} (use sqlite:///path or mongodb://host/db)")


__all__ = ["open_store", "Session", "Store", "StoredResource", "VersionConflict"]
