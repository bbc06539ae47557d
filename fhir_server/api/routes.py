"""URL dispatch for the RESTful API: which interaction a method and path mean.

FHIR paths overlap (``/Patient/_history``, ``/Patient/$validate``, ``/Patient/123``,
``/Patient/123/Encounter``), so a few catch-all routes decide by the path's shape in one
place instead of relying on route order. Handlers stay thin: parse, call the repository,
render.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ..errors import FhirError, operation_outcome
from ..formats import json as fjson
from ..repository import Repository, WriteResult, check_type, resource_issue_summary, version_from_etag
from ..resource_types import RESOURCE_TYPES
from ..security.guarded_store import check_client_read
from . import history, operations
from .negotiation import (FORM, JSON_PATCH, base_url, content_media_type, header, http_date, not_modified,
                          parse_resource, prefer, read_body, render, render_stored)

_ALL = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
#: (path, handler) in the order they are matched; every path takes every method in ``_ALL``
_ROUTES: list[tuple[str, object]] = []


def _route(path: str, first: bool = False):
    """Register a handler for ``path``. The catch-all paths differ in their number of segments, so their
    order never changes which one a path selects; ``first`` puts the most frequent (read, update, delete
    by id) ahead of the others and of FastAPI's own (``/openapi.json``), saving their matching. A fixed
    two-segment path must go before it."""
    def register(handler):
        if first:
            _ROUTES.insert(0, (path, handler))
        else:
            _ROUTES.append((path, handler))
        return handler

    return register


def _repo(request: Request) -> Repository:
    return request.app.state.repository


def _not_allowed(method: str, path: str) -> FhirError:
    return FhirError(405, f"{method} is not allowed on {path}", "not-supported")


def _version_headers(request: Request, record, location: bool = False) -> dict:
    headers = {"ETag": f'W/"{record.version}"', "Last-Modified": http_date(record.last_updated)}
    if location:
        headers["Location"] = (f"{base_url(request)}/{record.resource_type}/{record.id}"
                               f"/_history/{record.version}")
    return headers


def _if_match(request: Request) -> int | None:
    return version_from_etag(header(request, b"if-match"))


def _prefer_return(request: Request) -> str:
    return prefer(request, "return", "representation")


def _write_response(request: Request, result: WriteResult, status: int) -> Response:
    headers = _version_headers(request, result.record, location=True)
    wanted = _prefer_return(request)
    if wanted == "minimal":
        return Response(status_code=status, headers=headers)
    if wanted == "OperationOutcome":
        return render(request, operation_outcome(resource_issue_summary(result.issues)), status, headers)
    return render_stored(request, result.record.body, status, headers)


async def _resource_body(request: Request) -> dict:
    return parse_resource(request, await read_body(request))


# ---- system level ---------------------------------------------------------------------------

@_route("/")
async def system(request: Request) -> Response:
    if request.method == "POST":
        body = await read_body(request)
        if content_media_type(request) == FORM:
            from .search import search_system

            return await search_system(request)
        bundle = parse_resource(request, body)
        representation = _prefer_return(request) == "representation"
        result = _repo(request).process_bundle(bundle, base_url(request), representation)
        return render(request, result)
    if request.method == "GET":
        from .search import search_system

        return await search_system(request)
    raise _not_allowed(request.method, "/")


@_route("/metadata")
async def metadata(request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        raise _not_allowed(request.method, "/metadata")
    return render(request, request.app.state.capability_statement(base_url(request)))


@_route("/{first}")
async def type_level(request: Request) -> Response:
    first = request.path_params["first"]  # handlers take only the request (see install)
    if first.startswith("$"):
        return await _operation(request, first[1:], "system", None, None)
    if first == "_history":
        if request.method != "GET":
            raise _not_allowed(request.method, "/_history")
        return await history.history(request, None, None)
    if first == "_search":
        if request.method != "POST":
            raise _not_allowed(request.method, "/_search")
        from .search import search_system

        return await search_system(request)
    check_type(first)
    method = request.method
    if method in ("GET", "HEAD"):
        from .search import search_type

        return await search_type(request, first)
    if method == "POST":
        if content_media_type(request) == FORM:
            raise FhirError(400, f"use POST /{first}/_search for a search with a form body", "invalid")
        resource = await _resource_body(request)
        result = _repo(request).create(resource, header(request, b"if-none-exist"), resource_type=first)
        return _write_response(request, result, 201 if result.created else 200)
    query = request.url.query
    if method == "PUT":
        if not query:
            raise FhirError(400, f"PUT /{first} needs an id (PUT /{first}/id) or search criteria", "invalid")
        resource = await _resource_body(request)
        repo = _repo(request)
        with repo.store.session(write=True) as session:
            result = repo.conditional_update_in(session, first, query, resource, _if_match(request))
        return _write_response(request, result, 201 if result.created else 200)
    if method == "DELETE":
        if not query:
            raise FhirError(412, f"DELETE /{first} needs search criteria", "invalid")
        repo = _repo(request)
        with repo.store.session(write=True) as session:
            record = repo.conditional_delete_in(session, first, query)
        return Response(status_code=204, headers={"ETag": f'W/"{record.version}"'} if record else None)
    raise _not_allowed(method, f"/{first}")


@_route("/{resource_type}/{second}", first=True)
async def instance_level(request: Request) -> Response:
    resource_type, second = request.path_params["resource_type"], request.path_params["second"]
    if second.startswith("$"):
        check_type(resource_type)
        return await _operation(request, second[1:], "type", resource_type, None)
    if second == "_history":
        check_type(resource_type)
        if request.method != "GET":
            raise _not_allowed(request.method, f"/{resource_type}/_history")
        return await history.history(request, resource_type, None)
    if second == "_search":
        check_type(resource_type)
        if request.method != "POST":
            raise _not_allowed(request.method, f"/{resource_type}/_search")
        from .search import search_type

        return await search_type(request, resource_type)
    check_type(resource_type)
    repo, id, method = _repo(request), second, request.method
    if method in ("GET", "HEAD"):
        with repo.store.session() as session:
            check_client_read(session, resource_type, id)
            record = repo.read_in(session, resource_type, id)
        return _stored_version(request, record)
    if method == "PUT":
        resource = await _resource_body(request)
        result = repo.update(resource_type, id, resource, _if_match(request))
        return _write_response(request, result, 201 if result.created else 200)
    if method == "DELETE":
        record = repo.delete(resource_type, id)
        return Response(status_code=204, headers={"ETag": f'W/"{record.version}"'} if record else None)
    if method == "PATCH":
        body = await read_body(request)
        media = content_media_type(request)
        if media != JSON_PATCH:
            raise FhirError(415, f"PATCH takes {JSON_PATCH} (got '{media or 'no Content-Type'}')", "not-supported")
        try:
            patch = fjson.loads(body)
        except fjson.JSONDecodeError as exc:
            raise FhirError(400, f"malformed JSON Patch: {exc}", "structure") from None
        with repo.store.session(write=True) as session:
            result = repo.patch_in(session, resource_type, id, patch, _if_match(request))
        return _write_response(request, result, 200)
    raise _not_allowed(method, f"/{resource_type}/{id}")


@_route("/{resource_type}/{id}/{third}")
async def instance_sub(request: Request) -> Response:
    params = request.path_params
    resource_type, id, third = params["resource_type"], params["id"], params["third"]
    check_type(resource_type)
    if third.startswith("$"):
        return await _operation(request, third[1:], "instance", resource_type, id)
    if request.method != "GET":
        raise _not_allowed(request.method, f"/{resource_type}/{id}/{third}")
    if third == "_history":
        return await history.history(request, resource_type, id)
    if third in RESOURCE_TYPES or third == "*":
        from .search import search_compartment

        return await search_compartment(request, resource_type, id, third)
    raise FhirError(404, f"unknown path /{resource_type}/{id}/{third}", "not-found")


@_route("/{resource_type}/{id}/_history/{version}")
async def vread(request: Request) -> Response:
    params = request.path_params
    resource_type, id, version = params["resource_type"], params["id"], params["version"]
    if request.method not in ("GET", "HEAD"):
        raise _not_allowed(request.method, f"/{resource_type}/{id}/_history/{version}")
    repo = _repo(request)
    with repo.store.session() as session:
        check_client_read(session, resource_type, id)
        record = repo.vread_in(session, resource_type, id, version)
    return _stored_version(request, record)


def _stored_version(request: Request, record) -> Response:
    """A read or vread: the stored bytes, or 304 when the client's copy is current (conditional read)."""
    headers = _version_headers(request, record)
    if not_modified(request, headers["ETag"], record.last_updated):
        return Response(status_code=304, headers=headers)
    return render_stored(request, record.body, 200, headers)


async def _operation(request: Request, name: str, level: str, resource_type: str | None, id: str | None):
    op = operations.find(name, level, resource_type, request.method)
    raw = b""
    parameters = operations.query_parameters(request)
    body = None
    if request.method == "POST":
        raw = await read_body(request)
        content_type = content_media_type(request)
        # a FHIR body (Parameters or a resource) is parsed; anything else (an HL7 v2 message, text/xml
        # documents) reaches the operation as raw bytes
        looks_fhir = not content_type or "json" in content_type or "xml" in content_type
        if "fhir" in content_type or (raw.strip() and looks_fhir and not content_type.startswith("text/")):
            parsed = parse_resource(request, raw)
            if parsed.get("resourceType") == "Parameters":
                parameters = {**parsed, "parameter": (parsed.get("parameter") or []) + parameters["parameter"]}
            else:
                body = parsed
    if id is not None and op.affects_state is False and level == "instance":
        _repo(request).read(resource_type, id)  # 404/410 before running an instance operation
    context = operations.OperationContext(request, name, resource_type, id, parameters, body, raw,
                                          _repo(request), request.app.state.settings)
    result = await operations.invoke(op, context)
    if isinstance(result, Response):
        return result
    return render(request, result)


def install(app: FastAPI) -> None:
    """Serve the routes as plain Starlette routes. The handlers take the request and nothing else, so
    what FastAPI does per request for an ``APIRoute`` (solving declared parameters, parsing the query
    string and cookies for them, route telemetry) would buy nothing: about 30 µs, over a third of a
    read's CPU in process. The OpenAPI document still describes them, one operation per method."""
    routes = app.router.routes
    for n, (path, handler) in enumerate(_ROUTES):
        app.router.add_route(path, handler, methods=_ALL, name=handler.__name__, include_in_schema=False)
        if n == 0:  # the first of _ROUTES (see _route) goes ahead of FastAPI's own routes too
            routes.insert(0, routes.pop())

    def openapi() -> dict:
        if app.openapi_schema is None:
            described = [APIRoute(path, handler, methods=[method], name=handler.__name__,
                                  operation_id=f"{handler.__name__}_{method.lower()}")
                         for path, handler in _ROUTES for method in sorted(_ALL)]
            app.openapi_schema = get_openapi(title=app.title, version=app.version, routes=[*app.routes, *described])
        return app.openapi_schema

    app.openapi = openapi
