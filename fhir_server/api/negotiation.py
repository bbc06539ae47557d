"""Content negotiation: request bodies in, response bodies out, JSON or XML.

The JSON fast path serves stored bytes untouched; XML, ``_pretty``, ``_summary`` and
``_elements`` are the only reasons to re-serialise.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response

from ..errors import FhirError
from ..formats import json as fjson

JSON = "application/fhir+json"
XML = "application/fhir+xml"
JSON_PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"

_JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir", "json", "text/json"}
_XML_TYPES = {"application/fhir+xml", "application/xml", "application/xml+fhir", "text/xml", "xml"}
_FORMAT_ALIASES = {"json": JSON, "xml": XML, "html": JSON, "text/html": JSON}


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def scope_header(headers, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes) in an ASGI scope's header list, or None.

    Used instead of Starlette's ``Headers``: most headers an interaction consults (If-None-Match,
    If-Modified-Since, Prefer, If-None-Exist) are absent, and a ``Headers`` lookup pays an exception for
    each absent one."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def header(request: Request, name: bytes) -> str | None:
    """A request header by lower-case name (see :func:`scope_header`)."""
    return scope_header(request.scope["headers"], name)


def response_format(request: Request) -> str:
    """JSON or XML for the response, from ``_format`` or the Accept header (JSON by default)."""
    # most requests have no query string: skip building QueryParams for them
    fmt = request.query_params.get("_format") if request.scope.get("query_string") else None
    if fmt:
        media = _media_type(fmt)
        if media in _XML_TYPES:
            return XML
        if media in _JSON_TYPES or media in _FORMAT_ALIASES:
            return JSON
        raise FhirError(406, f"_format '{fmt}' is not supported (use json or xml)", "not-supported")
    accept = header(request, b"accept")
    if accept:
        for part in accept.split(","):
            media = _media_type(part)
            if media in _JSON_TYPES:
                return JSON
            if media in _XML_TYPES:
                return XML
    return JSON


def prefer(request: Request, name: str, default: str | None = None) -> str | None:
    """One preference of the ``Prefer`` header (``return``, ``handling``), unquoted."""
    for part in (header(request, b"prefer") or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip() == name:
            return value.strip().strip('"')
    return default


def content_media_type(request: Request) -> str:
    """The request's media type without parameters, lower case ('' when absent)."""
    return _media_type(header(request, b"content-type") or "")


def is_pretty(request: Request) -> bool:
    if not request.scope.get("query_string"):
        return False
    return request.query_params.get("_pretty", "").lower() == "true"


async def read_body(request: Request) -> bytes:
    """The request body, refusing (413) anything over the configured limit without reading it all."""
    limit = request.app.state.settings.max_body_bytes
    declared = header(request, b"content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FhirError(413, f"the request body is larger than the limit of {limit} bytes", "too-costly")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FhirError(413, f"the request body is larger than the limit of {limit} bytes", "too-costly")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # later readers (form parsing) see the same bytes
    return body


def request_format(request: Request, body: bytes) -> str:
    content_type = header(request, b"content-type")
    if not content_type:
        return XML if body.lstrip()[:1] == b"<" else JSON
    media = _media_type(content_type)
    if media in _JSON_TYPES:
        return JSON
    if media in _XML_TYPES:
        return XML
    if media == JSON_PATCH:
        return JSON_PATCH
    raise FhirError(415, f"Content-Type '{content_type}' is not supported; use {JSON} or {XML}", "not-supported")


def parse_resource(request: Request, body: bytes) -> dict:
    """Parse a resource body (JSON or XML) into a dict; malformed input is a 400."""
    if not body.strip():
        raise FhirError(400, "the request has no body", "required")
    fmt = request_format(request, body)
    if fmt == XML:
        from ..formats.xml import xml_to_resource

        return xml_to_resource(body)
    if fmt == JSON_PATCH:
        raise FhirError(415, "a JSON Patch body is accepted only by PATCH", "not-supported")
    try:
        value = fjson.loads(body)
    except fjson.JSONDecodeError as exc:
        raise FhirError(400, f"malformed JSON: {exc}", "structure") from None
    if not isinstance(value, dict):
        raise FhirError(400, "the body must be a JSON object holding a FHIR resource", "structure")
    return value


def base_url(request: Request) -> str:
    """The FHIR base URL for links: the configured one, else the one the request came in on."""
    configured = request.app.state.settings.base_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(instant: str) -> str:
    """A FHIR instant as an HTTP date (RFC 9110 IMF-fixdate, ``Sun, 06 Nov 1994 08:49:37 GMT``), for
    ``Last-Modified`` on every read and write; formatted here, a third faster than ``email.utils``."""
    when = datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(timezone.utc)
    return (f"{_WEEKDAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} {when.year:04d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} GMT")


def not_modified(request: Request, etag: str, last_updated: str) -> bool:
    """Whether a conditional read may answer 304 (RFC 9110 §13.2.2: If-None-Match, when sent, decides;
    else If-Modified-Since). ETags compare weakly (``"2"`` matches ``W/"2"``); HTTP dates have whole
    seconds, so the stored instant is cut to the second."""
    if_none_match = header(request, b"if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag.removeprefix("W/") in tags
    if_modified_since = header(request, b"if-modified-since")
    if not if_modified_since:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # an unparseable date is ignored, as the RFC asks
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    modified = datetime.fromisoformat(last_updated.replace("Z", "+00:00")).replace(microsecond=0)
    return modified <= since


def render(request: Request, resource: dict | None, status: int = 200, headers: dict | None = None) -> Response:
    """A response holding ``resource`` in the negotiated format (an empty body for None)."""
    if resource is None:
        return Response(status_code=status, headers=headers)
    fmt = response_format(request)
    if fmt == XML:
        from ..formats.xml import resource_to_xml

        body = resource_to_xml(resource, pretty=is_pretty(request))
    else:
        body = fjson.dumps(resource, pretty=is_pretty(request))
    return Response(body, status_code=status, headers=headers, media_type=f"{fmt}; charset=utf-8")


def render_stored(request: Request, body: bytes, status: int = 200, headers: dict | None = None) -> Response:
    """A stored resource: its bytes as they are when JSON is wanted, re-rendered otherwise."""
    query = request.query_params if request.scope.get("query_string") else {}
    if "_summary" in query or "_elements" in query:
        from ..search.shaping import apply

        elements = query.get("_elements")
        shaped = apply(fjson.loads(body), query.get("_summary"), elements.split(",") if elements else None)
        return render(request, shaped, status, headers)
    if response_format(request) == JSON and not is_pretty(request):
        return Response(body, status_code=status, headers=headers, media_type=f"{JSON}; charset=utf-8")
    return render(request, fjson.loads(body), status, headers)
