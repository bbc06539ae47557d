"""Search interactions: type (``GET /Patient``, ``POST /Patient/_search``), system (``GET /``,
``POST /_search``) and compartment (``GET /Patient/123/ServiceRequest``).

Handlers gather the parameters (query string and, for POST, the form body), honour
``Prefer: handling=strict|lenient``, run the parsed search in the store and render the Bundle.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..errors import FhirError
from ..search import bundle as search_bundle
from ..search.query import compartment_condition, compartment_types, whole_compartment_condition
from ..search.registry import default_registry
from ..repository import check_type
from .negotiation import FORM, JSON, base_url, content_media_type, is_pretty, prefer, read_body, render, response_format


async def _pairs(request: Request) -> list[tuple[str, str]]:
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        body = await read_body(request)
        content_type = content_media_type(request)
        if body.strip():
            if content_type != FORM:
                raise FhirError(415, f"POST _search takes a form body ({FORM})", "not-supported")
            try:
                pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            except UnicodeDecodeError:
                raise FhirError(400, "the form body is not UTF-8", "invalid") from None
    return pairs


def _strict(request: Request) -> bool:
    return prefer(request, "handling") == "strict"



async def _run(request: Request, types: list[str], pairs, path: str, compartment=None) -> Response:
    settings = request.app.state.settings
    base = base_url(request)
    store = request.app.state.store
    parser = search_bundle.parser_for(base, settings.default_page_size, settings.max_page_size, store)
    query = parser.parse(types, pairs, strict=_strict(request), compartment=compartment)
    # stored JSON bytes go into the Bundle as they are unless the response is XML or pretty-printed
    raw = response_format(request) == JSON and not is_pretty(request)

    def execute() -> dict:
        with store.session() as session:
            result = session.search(query)
        return search_bundle.build(query, result, base, path, raw_bodies=raw)

    return render(request, await run_in_threadpool(execute))


async def search_type(request: Request, resource_type: str) -> Response:
    check_type(resource_type)
    return await _run(request, [resource_type], await _pairs(request), resource_type)


async def search_system(request: Request) -> Response:
    pairs = await _pairs(request)
    return await _run(request, search_bundle.system_types(pairs), pairs, "")


async def search_compartment(request: Request, compartment_type: str, compartment_id: str,
                             resource_type: str) -> Response:
    """``GET /Patient/1/Condition``, or ``/Patient/1/*`` for every type in the compartment."""
    registry = default_registry()
    if resource_type != "*":
        check_type(resource_type)
    if compartment_type not in registry.compartments:
        raise FhirError(404, f"{compartment_type} is not a compartment", "not-supported")
    if resource_type == "*":
        types = compartment_types(registry, compartment_type)
        condition = whole_compartment_condition(registry, compartment_type, compartment_id, types)
    else:
        types = [resource_type]
        condition = compartment_condition(registry, compartment_type, compartment_id, resource_type)
    if condition is None:
        raise FhirError(400, f"{resource_type} is not in the {compartment_type} compartment", "not-supported")
    return await _run(request, types, await _pairs(request),
                      f"{compartment_type}/{compartment_id}/{resource_type}", compartment=condition)
