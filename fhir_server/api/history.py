"""History interactions (instance, type, system) with ``_since`` and ``_count``.

``_at`` and ``_list`` are refused (400) rather than ignored: a client asking for the versions
current at a time must not receive every version instead.

Pages are pinned to the history sequence number seen by the first page, so later writes
never shift entries between pages.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ..errors import FhirError
from ..formats import json as fjson
from ..repository import instant
from .negotiation import base_url, render


def _instant(value: str, name: str) -> str:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(400, f"{name} '{value}' is not a valid instant", "invalid", [name]) from None
    if when.tzinfo is None:
        raise FhirError(400, f"{name} '{value}' needs a time zone", "invalid", [name])
    return instant(when)


def _int(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise FhirError(400, f"{name} must be a non-negative integer", "invalid", [name])
    return int(value)


async def history(request: Request, resource_type: str | None, id: str | None) -> Response:
    settings = request.app.state.settings
    query = request.query_params
    for name in ("_at", "_list"):
        if name in query:
            raise FhirError(400, f"history does not support {name}; use _since", "not-supported", [name])
    count = min(_int(query.get("_count"), "_count", settings.default_page_size), settings.max_page_size)
    offset = _int(query.get("_offset"), "_offset", 0)
    since = _instant(query["_since"], "_since") if query.get("_since") else None
    repo = request.app.state.repository
    with repo.store.session() as session:
        if id is not None:
            if session.read(resource_type, id) is None:
                raise FhirError(404, f"{resource_type}/{id} is not known", "not-found")
        snapshot = _int(query.get("_snapshot"), "_snapshot", 0) or session.last_sequence()
        records, total = session.history(resource_type, id, since, count, offset, snapshot)
    base = base_url(request)
    path = "/".join(p for p in (resource_type, id, "_history") if p)
    params = {k: v for k, v in query.items() if k not in ("_offset", "_snapshot")}

    def link(relation: str, at: int) -> dict:
        return {"relation": relation,
                "url": f"{base}/{path}?" + urlencode({**params, "_count": count, "_offset": at, "_snapshot": snapshot})}

    links = [link("self", offset)]
    if offset + count < total:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    entries = []
    for record in records:
        url = f"{base}/{record.resource_type}/{record.id}"
        entry: dict = {"fullUrl": url}
        if not record.deleted:
            entry["resource"] = fjson.loads(record.body)
        method = "POST" if record.method == "POST" else ("DELETE" if record.deleted else "PUT")
        entry["request"] = {"method": method,
                            "url": record.resource_type if method == "POST" else f"{record.resource_type}/{record.id}"}
        entry["response"] = {"status": "201 Created" if record.version == 1 and not record.deleted
                             else ("204 No Content" if record.deleted else "200 OK"),
                             "etag": f'W/"{record.version}"', "lastModified": record.last_updated}
        entries.append(entry)
    return render(request, {"resourceType": "Bundle", "type": "history", "total": total, "link": links,
                            "entry": entries})
