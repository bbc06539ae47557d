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

from starlette.concurrency import run_in_threadpool

from ..errors import FhirError
from ..search import bundle as search_bundle
from ..search.query import compartment_types, whole_compartment_condition
from ..search.registry import default_registry
from ..search.result import SearchResult
from ..search.values import date_range
from .negotiation import JSON, base_url, is_pretty, response_format
from .operations import OperationContext, operation

_PARAMETERS = ("_since", "_type", "_count", "_cursor")


def _types(context: OperationContext) -> tuple[bool, list[str]]:
    """(whether the focal resource itself is wanted, the compartment's member types to search): all without
    ``_type``."""
    focal = context.resource_type
    members = [t for t in compartment_types(default_registry(), focal) if t != focal or focal == "Patient"]
    wanted = search_bundle.named_types(context.values("_type"))
    if not wanted:
        return True, members
    return focal in wanted, [t for t in members if t in wanted]


@operation("everything", types=["Encounter"], levels=("instance",), methods=("GET", "POST"),
           definition={"url": "http://hl7.org/fhir/OperationDefinition/Encounter-everything"})
@operation("everything", types=["Patient"], levels=("instance",), methods=("GET", "POST"),
           definition={"url": "http://hl7.org/fhir/OperationDefinition/Patient-everything"})
async def everything(context: OperationContext):
    for name in ("start", "end"):
        if context.values(name):
            raise FhirError(400, f"$everything: '{name}' is not supported; use _since, or search by date",
                            "not-supported", [name])
    unknown = sorted({p.get("name") for p in context.parameters.get("parameter") or []} - set(_PARAMETERS))
    if unknown:
        raise FhirError(400, f"$everything does not take {', '.join(map(str, unknown))}", "not-supported")
    request, focal, focal_id = context.request, context.resource_type, context.id
    with_focal, members = _types(context)
    since = context.text("_since")
    if since is not None and date_range(since) is None:
        raise FhirError(400, f"$everything: _since {since!r} is not a valid instant", "invalid", ["_since"])
    cursor = context.text("_cursor")
    changed = [("_lastUpdated", f"ge{since}")] if since else []
    paging = [(name, value) for name in ("_count", "_cursor") for value in context.values(name)]
    base, settings = base_url(request), context.settings
    parser = search_bundle.parser_for(base, settings.default_page_size, settings.max_page_size)
    # the focal resource and what it references, then its compartment and what that references
    own = parser.parse([focal], [("_id", focal_id), ("_include", "*"), *changed])
    condition = whole_compartment_condition(default_registry(), focal, focal_id, members) if members else None
    compartment = (parser.parse(members, [("_include", "*"), *changed, *paging], strict=True, compartment=condition)
                   if condition else None)
    # paging links repeat the operation's own parameters (with the page size and cursor)
    path = f"{focal}/{focal_id}/$everything"
    link_pairs = [(name, value) for name in ("_since", "_type") for value in context.values(name)]
    raw = response_format(request) == JSON and not is_pretty(request)
    store = request.app.state.store

    def execute() -> dict:
        with store.session() as session:
            own_result = session.search(own) if with_focal else SearchResult(total=0)
            result = session.search(compartment) if compartment is not None else SearchResult(total=0)
        bundle = search_bundle.build(compartment if compartment is not None else own, result, base, path,
                                     raw_bodies=raw, link_pairs=link_pairs)
        if own_result.matches:
            if "total" in bundle:
                bundle["total"] += len(own_result.matches)
            if cursor is None:  # the focal resource opens the first page; nothing appears twice
                head = search_bundle.build(own, own_result, base, path, raw_bodies=raw)["entry"]
                seen = {entry["fullUrl"] for entry in head}
                bundle["entry"] = head + [e for e in bundle.get("entry", []) if e["fullUrl"] not in seen]
        return bundle

    return await run_in_threadpool(execute)
