"""``Patient/[id]/$everything`` (and ``Encounter/[id]/$everything``): a shared record in one searchset Bundle.

The Patient (or Encounter), every resource in its compartment (one search over all member types, paged by
the same cursor as any search) and, with ``_include=*``, what those resources reference
(practitioners, organisations, medications…). Parameters: ``_since`` (only resources changed
since), ``_type`` (which types), ``_count`` (page size); ``start``/``end`` are refused rather
than silently ignored. Paging links repeat the operation's own parameters.

The access policy applies as to any search: consortium members may search one restricted type
at a time, so for them ``$everything`` needs ``_type`` naming a single type.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool

from ..errors import FhirError
from ..resource_types import RESOURCE_TYPES
from ..search import bundle as search_bundle
from ..search.query import compartment_types, whole_compartment_condition
from ..search.registry import default_registry
from ..search.values import date_range
from .negotiation import JSON, base_url, is_pretty, response_format
from .operations import OperationContext, operation

_PARAMETERS = ("_since", "_type", "_count", "_cursor")


def _values(context: OperationContext, name: str) -> list[str]:
    found = []
    for parameter in context.parameters.get("parameter") or []:
        if parameter.get("name") == name:
            value = next((v for k, v in parameter.items() if k.startswith("value")), None)
            if value is not None:
                found.append(str(value))
    return found


def _types(context: OperationContext) -> tuple[bool, list[str]]:
    """(whether the focal resource itself is wanted, the compartment's member types to search): all without
    ``_type``."""
    focal = context.resource_type
    members = [t for t in compartment_types(default_registry(), focal) if t != focal or focal == "Patient"]
    wanted = [t.strip() for value in _values(context, "_type") for t in value.split(",") if t.strip()]
    for resource_type in wanted:
        if resource_type not in RESOURCE_TYPES:
            raise FhirError(400, f"_type: unknown resource type '{resource_type}'", "invalid", ["_type"])
    if not wanted:
        return True, members
    return focal in wanted, [t for t in members if t in wanted]


def _relink(bundle: dict, url: str, params: list[tuple[str, str]]) -> None:
    """Point the paging links at this operation, with its parameters and each link's cursor."""
    for link in bundle.get("link", []):
        cursor = dict(parse_qsl(link["url"].partition("?")[2])).get("_cursor")
        pairs = [(k, v) for k, v in params if k != "_cursor"] + ([("_cursor", cursor)] if cursor else [])
        link["url"] = f"{url}?{urlencode(pairs)}" if pairs else url


@operation("everything", types=["Encounter"], levels=("instance",), methods=("GET", "POST"),
           definition={"url": "http://hl7.org/fhir/OperationDefinition/Encounter-everything"})
@operation("everything", types=["Patient"], levels=("instance",), methods=("GET", "POST"),
           definition={"url": "http://hl7.org/fhir/OperationDefinition/Patient-everything"})
async def everything(context: OperationContext):
    for name in ("start", "end"):
        if _values(context, name):
            raise FhirError(400, f"$everything: '{name}' is not supported; use _since, or search by date",
                            "not-supported", [name])
    unknown = sorted({p.get("name") for p in context.parameters.get("parameter") or []} - set(_PARAMETERS))
    if unknown:
        raise FhirError(400, f"$everything does not take {', '.join(map(str, unknown))}", "not-supported")
    request, focal, focal_id = context.request, context.resource_type, context.id
    with_focal, members = _types(context)
    since = (_values(context, "_since") or [None])[0]
    if since is not None and date_range(since) is None:
        raise FhirError(400, f"$everything: _since {since!r} is not a valid instant", "invalid", ["_since"])
    cursor = (_values(context, "_cursor") or [None])[0]
    changed = [("_lastUpdated", f"ge{since}")] if since else []
    paging = [(name, value) for name in ("_count", "_cursor") for value in _values(context, name)]
    base, settings = base_url(request), context.settings
    parser = search_bundle.parser_for(base, settings.default_page_size, settings.max_page_size)
    # the focal resource and what it references, then its compartment and what that references
    own = parser.parse([focal], [("_id", focal_id), ("_include", "*"), *changed]) if with_focal else None
    condition = whole_compartment_condition(default_registry(), focal, focal_id, members) if members else None
    compartment = (parser.parse(members, [("_include", "*"), *changed, *paging], strict=True, compartment=condition)
                   if condition else None)
    raw = response_format(request) == JSON and not is_pretty(request)
    store = request.app.state.store

    def execute() -> dict:
        with store.session() as session:
            own_result = session.search(own) if own is not None else None
            result = session.search(compartment) if compartment is not None else None
        if result is not None:
            bundle = search_bundle.build(compartment, result, base, "", raw_bodies=raw)
        else:
            bundle = {"resourceType": "Bundle", "type": "searchset", "total": 0,
                      "link": [{"relation": "self", "url": base}]}
        if own_result is not None and own_result.matches:
            if "total" in bundle:
                bundle["total"] += len(own_result.matches)
            if cursor is None:  # the focal resource opens the first page; nothing appears twice
                head = search_bundle.build(own, own_result, base, "", raw_bodies=raw)["entry"]
                seen = {entry["fullUrl"] for entry in head}
                bundle["entry"] = head + [e for e in bundle.get("entry", []) if e["fullUrl"] not in seen]
        params = [(k, v) for k in ("_since", "_type", "_count") for v in _values(context, k)]
        _relink(bundle, f"{base}/{focal}/{focal_id}/$everything", params)
        return bundle

    return await run_in_threadpool(execute)
