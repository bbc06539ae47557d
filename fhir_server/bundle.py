"""Batch and transaction Bundles (``POST /``).

A transaction is one store session: every entry succeeds or nothing is stored. Entries
are processed in the order the specification fixes (DELETE, POST, PUT/PATCH, GET), after
the ids of all new resources are decided, so ``urn:uuid:`` fullUrls and conditional
references (``Patient?identifier=…``) are rewritten to ``Type/id`` before any write.
A batch runs each entry in its own session and reports each outcome separately.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from .errors import FhirError, issue, operation_outcome
from .formats import json as fjson
from .repository import new_id
from .resource_types import RESOURCE_TYPES
from .store.base import StoredResource

if TYPE_CHECKING:
    from .repository import Repository, WriteResult

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


class _Entry:
    __slots__ = ("index", "method", "url", "path", "query", "resource", "request", "full_url", "target", "matched")

    def __init__(self, index: int, raw: object, base_url: str):
        where = f"Bundle.entry[{index}]"
        if not isinstance(raw, dict):
            raise FhirError(400, f"{where} is not an object", "structure", [where])
        request = raw.get("request")
        if not isinstance(request, dict):
            raise FhirError(400, f"{where} has no request", "required", [f"{where}.request"])
        method = request.get("method")
        url = request.get("url")
        if method not in _ORDER:
            raise FhirError(400, f"{where}.request.method '{method}' is not supported", "invalid",
                            [f"{where}.request.method"])
        if not isinstance(url, str) or not url:
            raise FhirError(400, f"{where}.request.url is missing", "required", [f"{where}.request.url"])
        if base_url and url.startswith(base_url):
            url = url[len(base_url):]
        url = url.lstrip("/")
        path, _, query = url.partition("?")
        self.index, self.method, self.url, self.path, self.query = index, method, url, path, query
        self.request = request
        self.resource = raw.get("resource")
        self.full_url = raw.get("fullUrl")
        self.target: tuple[str, str] | None = None  # (type, id) decided before any write
        self.matched: StoredResource | None = None  # what a POST's ifNoneExist found
        if method in ("POST", "PUT") and not isinstance(self.resource, dict):
            raise FhirError(400, f"{where} ({method}) carries no resource", "required", [f"{where}.resource"])

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def _response(status: int, record: StoredResource | None = None, resource: dict | None = None,
              outcome: list[dict] | None = None) -> dict:
    response: dict = {"status": _STATUS_TEXT.get(status, str(status))}
    if record is not None:
        response["location"] = f"{record.resource_type}/{record.id}/_history/{record.version}"
        response["etag"] = f'W/"{record.version}"'
        response["lastModified"] = record.last_updated
    entry: dict = {"response": response}
    if resource is not None:
        entry = {"resource": resource, **entry}
    if outcome:
        response["outcome"] = operation_outcome(outcome)
    return entry


def _rewrite_references(value: object, resolve) -> object:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                out[key] = resolve(item)
            else:
                out[key] = _rewrite_references(item, resolve)
        return out
    if isinstance(value, list):
        return [_rewrite_references(item, resolve) for item in value]
    return value


def _if_match(request: dict) -> int | None:
    from .repository import version_from_etag

    return version_from_etag(request.get("ifMatch"), "ifMatch")


def _split_path(entry: _Entry) -> list[str]:
    return [part for part in entry.path.split("/") if part]


def _patch_document(entry: _Entry) -> object:
    resource = entry.resource
    if isinstance(resource, dict) and resource.get("resourceType") == "Binary" and resource.get("data"):
        try:
            return fjson.loads(base64.b64decode(resource["data"]))
        except (ValueError, TypeError):
            raise FhirError(400, f"{entry.where}: the Binary does not hold a JSON Patch", "invalid") from None
    raise FhirError(400, f"{entry.where}: PATCH in a Bundle needs a Binary holding a JSON Patch document",
                    "not-supported")


def _read_entry(repo: "Repository", session, entry: _Entry, base_url: str) -> dict:
    from .security.guarded_store import check_client_read

    parts = _split_path(entry)
    if parts and parts[0] in RESOURCE_TYPES:  # scopes and access policy, as for the REST read or search
        check_client_read(session, parts[0], parts[1] if len(parts) in (2, 4) else None)
    if len(parts) == 2 and not entry.query:
        record = repo.read_in(session, parts[0], parts[1])
        return _response(200, record, fjson.loads(record.body))
    if len(parts) == 4 and parts[2] == "_history":
        record = repo.vread_in(session, parts[0], parts[1], parts[3])
        return _response(200, record, fjson.loads(record.body))
    if len(parts) == 1:
        from .search.bundle import search_bundle  # searches inside Bundles share the REST search

        return _response(200, None, search_bundle(session, parts[0], entry.query, base_url))
    raise FhirError(400, f"{entry.where}: unsupported GET url '{entry.url}'", "not-supported")


def _decide_targets(repo: "Repository", session, entries: list[_Entry]) -> dict[str, str]:
    """Give every entry that writes its (type, id) before anything is written; map fullUrls to them."""
    aliases: dict[str, str] = {}
    conditional: dict[str, str] = {}
    for entry in entries:
        parts = _split_path(entry)
        if entry.method == "POST":
            if len(parts) != 1:
                raise FhirError(400, f"{entry.where}: POST url must be a resource type", "invalid")
            resource_type = parts[0]
            if_none_exist = entry.request.get("ifNoneExist")
            matches = repo.find(session, resource_type, if_none_exist) if if_none_exist else []
            if len(matches) > 1:
                raise FhirError(412, f"{entry.where}: ifNoneExist matched {len(matches)} resources", "duplicate")
            entry.target = (resource_type, matches[0].id if matches else new_id())
            entry.matched = matches[0] if matches else None
            if if_none_exist:
                conditional[f"{resource_type}?{if_none_exist}"] = entry.target[1]
        elif entry.method in ("PUT", "PATCH", "DELETE") and len(parts) == 1 and entry.query:
            resource_type = parts[0]
            matches = repo.find(session, resource_type, entry.query)
            if len(matches) > 1:
                raise FhirError(412, f"{entry.where}: {entry.url} matched {len(matches)} resources",
                                "multiple-matches")
            if matches:
                entry.target = (resource_type, matches[0].id)
            elif entry.method == "PUT":
                body_id = entry.resource.get("id") if isinstance(entry.resource, dict) else None
                entry.target = (resource_type, body_id or new_id())
            conditional[entry.url] = entry.target[1] if entry.target else ""
        elif entry.method in ("PUT", "PATCH", "DELETE"):
            if len(parts) != 2:
                raise FhirError(400, f"{entry.where}: {entry.method} url must be Type/id or Type?query", "invalid")
            entry.target = (parts[0], parts[1])
        if entry.target and entry.full_url:
            if entry.full_url in aliases:
                raise FhirError(400, f"{entry.where}: fullUrl '{entry.full_url}' appears twice", "duplicate")
            aliases[entry.full_url] = f"{entry.target[0]}/{entry.target[1]}"
    deleted = {entry.target: entry for entry in entries if entry.method == "DELETE" and entry.target}
    for entry in entries:
        if entry.matched is not None and entry.target in deleted:
            raise FhirError(400, f"{entry.where}: ifNoneExist matched {'/'.join(entry.target)}, which "
                                 f"{deleted[entry.target].where} deletes in the same transaction", "invalid")
    return aliases | {f"__conditional__{k}": v for k, v in conditional.items() if v}


def _resolver(repo: "Repository", session, aliases: dict[str, str], base_url: str):
    def resolve(reference: str) -> str:
        if reference in aliases:
            return aliases[reference]
        if base_url and reference.startswith(base_url + "/"):
            local = reference[len(base_url) + 1:]
            if local.count("/") in (1, 3):
                return local
        if "?" in reference and not reference.startswith(("urn:", "http:", "https:", "#")):
            resource_type, _, query = reference.partition("?")
            known = aliases.get(f"__conditional__{reference}")
            if known:
                return f"{resource_type}/{known}"
            matches = repo.find(session, resource_type, query)
            if len(matches) != 1:
                raise FhirError(412 if matches else 404,
                                f"conditional reference '{reference}' matched {len(matches)} resources",
                                "not-found" if not matches else "multiple-matches")
            return f"{resource_type}/{matches[0].id}"
        if reference.startswith("urn:uuid:") or reference.startswith("urn:oid:"):
            raise FhirError(400, f"reference '{reference}' does not resolve to an entry of this Bundle", "invalid")
        return reference

    return resolve


def _apply(repo: "Repository", session, entry: _Entry, representation: bool) -> dict:
    if entry.method == "DELETE":
        if entry.target is None:
            return _response(204)
        record = repo.delete_in(session, *entry.target)
        return _response(204 if record is None else 200, record)
    if entry.method == "POST":
        resource_type, id = entry.target
        record = entry.matched
        if record is not None:  # the condition matched a stored resource: nothing to write
            return _response(200, record, fjson.loads(record.body) if representation else None)
        result = repo.create_in(session, entry.resource, resource_type=resource_type, id=id)
        return _result(201, result, representation)
    if entry.method == "PUT":
        resource_type, id = entry.target
        resource = entry.resource if "id" in entry.resource else {**entry.resource, "id": id}
        result = repo.update_in(session, resource_type, id, resource, _if_match(entry.request))
        return _result(201 if result.created else 200, result, representation)
    if entry.method == "PATCH":
        if entry.target is None:
            raise FhirError(404, f"{entry.where}: {entry.url} matched nothing", "not-found")
        result = repo.patch_in(session, *entry.target, _patch_document(entry), _if_match(entry.request))
        return _result(200, result, representation)
    raise AssertionError(entry.method)


def _result(status: int, result: "WriteResult", representation: bool) -> dict:
    warnings = [i for i in result.issues if i.get("severity") in ("warning", "information")]
    return _response(status, result.record, result.resource if representation else None, warnings or None)


def _located(error: FhirError, entry: _Entry) -> FhirError:
    for entry_issue in error.issues:
        diagnostics = entry_issue.get("diagnostics", "")
        if not diagnostics.startswith("Bundle.entry["):
            entry_issue["diagnostics"] = f"{entry.where} ({entry.method} {entry.url}): {diagnostics}"
        entry_issue.setdefault("expression", [entry.where])
    return error


def process_bundle(repo: "Repository", bundle: object, base_url: str = "", representation: bool = False) -> dict:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError(400, "POST to the base URL takes a Bundle of type transaction or batch", "invalid",
                        ["resourceType"])
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise FhirError(400, f"Bundle.type must be transaction or batch, not {kind!r}", "invalid", ["Bundle.type"])
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise FhirError(400, "Bundle.entry must be an array", "structure", ["Bundle.entry"])
    if len(raw_entries) > repo.settings.max_bundle_entries:
        raise FhirError(413, f"the Bundle has {len(raw_entries)} entries; the limit is "
                             f"{repo.settings.max_bundle_entries}", "too-costly")
    if kind == "batch":
        return _batch(repo, raw_entries, base_url, representation)
    entries = [_Entry(i, raw, base_url) for i, raw in enumerate(raw_entries)]
    responses: list[dict | None] = [None] * len(entries)
    with repo.store.session(write=True) as session:
        aliases = _decide_targets(repo, session, entries)
        resolve = _resolver(repo, session, aliases, base_url)
        for entry in entries:
            if isinstance(entry.resource, dict) and entry.method in ("POST", "PUT"):
                try:
                    entry.resource = _rewrite_references(entry.resource, resolve)
                except FhirError as error:
                    raise _located(error, entry) from None
        for entry in sorted(entries, key=lambda e: (_ORDER[e.method], e.index)):
            try:
                if entry.method in ("GET", "HEAD"):
                    responses[entry.index] = _read_entry(repo, session, entry, base_url)
                else:
                    responses[entry.index] = _apply(repo, session, entry, representation)
            except FhirError as error:
                raise _located(error, entry) from None
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}


def _batch(repo: "Repository", raw_entries: list, base_url: str, representation: bool) -> dict:
    responses = []
    for index, raw in enumerate(raw_entries):
        try:
            entry = _Entry(index, raw, base_url)
            with repo.store.session(write=entry.method not in ("GET", "HEAD")) as session:
                aliases = _decide_targets(repo, session, [entry])
                if isinstance(entry.resource, dict) and entry.method in ("POST", "PUT"):
                    entry.resource = _rewrite_references(entry.resource, _resolver(repo, session, aliases, base_url))
                if entry.method in ("GET", "HEAD"):
                    responses.append(_read_entry(repo, session, entry, base_url))
                else:
                    responses.append(_apply(repo, session, entry, representation))
        except FhirError as error:
            responses.append({"response": {"status": str(error.status), "outcome": error.outcome}})
        except Exception:  # one broken entry must not break the others
            responses.append({"response": {"status": "500",
                                           "outcome": operation_outcome([issue("fatal", "exception",
                                                                               "internal error")])}})
    return {"resourceType": "Bundle", "type": "batch-response", "entry": responses}
