"""The security middleware: size limits, bearer tokens, per-interaction scopes, caller context, audit.

One pure-ASGI middleware in front of the FHIR routes (cheaper than ``BaseHTTPMiddleware``):

1. refuses over-long URLs (414) and header blocks (431) — always, auth on or off;
2. with authentication on, requires ``Authorization: Bearer`` on everything but the public
   paths (CapabilityStatement, SMART configuration, token endpoint, OpenAPI schema), verifies
   the token and puts the caller in the context variable (``current_caller``);
3. classifies the request into a FHIR interaction from method and path (the same shapes
   ``fhir_server.api.routes`` dispatches on) and checks the SMART scope letter it needs,
   administrator-only types, and — for instance history, instance operations and writes by
   id — the access policy (404 when hidden; reads and vreads check it in the session that
   reads, :func:`~fhir_server.security.guarded_store.check_client_read`);
4. records one audit entry per request, including refusals, after the response is sent; a
   request that may return AuditEvents (an administrator's, or any with auth off) first waits
   until every recorded request is an indexed AuditEvent (``AuditWriter.catch_up``).

Checks that need the request body (Bundle entries, the resource being written) happen in
the guarded store and the Bundle hook, with the caller this middleware set.
"""

from __future__ import annotations

from functools import partial
from time import time_ns
from typing import NamedTuple

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..api.negotiation import FORM, scope_header
from ..errors import FhirError, issue, operation_outcome
from ..formats import json as fjson
from ..resource_types import RESOURCE_TYPES
from .context import reset_current, set_current
from .guarded_store import forbidden_scope
from .scopes import INTERACTION_LETTER
from .tokens import InvalidToken, NoBearerToken

PUBLIC_PATHS = frozenset(("/metadata", "/.well-known/smart-configuration", "/auth/token", "/openapi.json"))


class Interaction(NamedTuple):
    """What a request asks for (a tuple: one is made per request)."""

    name: str
    resource_type: str | None = None
    id: str | None = None
    letter: str | None = None


def _operation_letter(name: str, level: str, resource_type: str | None, method: str) -> str:
    from ..api import operations

    try:
        op = operations.find(name, level, resource_type, method)
    except FhirError:
        return "r" if level == "instance" else "s"
    if op.affects_state:
        return "u"
    return "r" if level == "instance" else "s"


#: builds an Interaction from a 4-tuple without the named tuple's Python-level ``__new__`` (a classification
#: is made per request)
_make = partial(tuple.__new__, Interaction)
_UNKNOWN = Interaction("unknown")

#: method → interaction on ``/Type``; method → (interaction, scope letter) on ``/Type/id``
_TYPE_LEVEL = {"GET": "search-type", "HEAD": "search-type", "POST": "create", "PUT": "update", "DELETE": "delete"}
_BY_ID = {method: (name, INTERACTION_LETTER[name]) for method, name in
          (("GET", "read"), ("HEAD", "read"), ("PUT", "update"), ("PATCH", "patch"), ("DELETE", "delete"))}
_UNKNOWN_BY_ID = ("unknown", None)


def classify(method: str, path: str, headers=()) -> Interaction:
    """The FHIR interaction a request asks for, by the shape of its path (and, for a POST to the base, the
    Content-Type among the ASGI ``headers``: a form is a search, anything else a batch or transaction)."""
    parts = path.split("/")
    # /Type/id first, in a few steps: reads, updates and deletes by id are most requests (an id has no
    # "$" or "_"; the general shapes below give the same answer)
    if len(parts) == 3:
        root, resource_type, second = parts
        if not root and resource_type and second and resource_type[0] != "$" and second[0] not in "$_":
            name, letter = _BY_ID.get(method, _UNKNOWN_BY_ID)
            return _make((name, resource_type, second, letter))
    if not parts[0]:  # the leading slash
        del parts[0]
    if "" in parts:  # "/" itself, a trailing slash or an empty segment
        parts = [p for p in parts if p]
    count = len(parts)
    if count == 2 and parts[0][0] != "$":  # /Type/$op, /Type/_history, /Type/_search
        resource_type, second = parts
        if second.startswith("$"):
            letter = _operation_letter(second[1:], "type", resource_type, method)
            return _make(("operation", resource_type, None, letter))
        if second == "_history":
            return _make(("history-type", resource_type, None, "s"))
        if second == "_search":
            return _make(("search-type", resource_type, None, "s"))
        name, letter = _BY_ID.get(method, _UNKNOWN_BY_ID)
        return _make((name, resource_type, second, letter))
    if count == 0:
        if method == "POST" and not (scope_header(headers, b"content-type") or "").startswith(FORM):
            return _make(("transaction", None, None, None))
        return _make(("search-system", None, None, "s"))
    first = parts[0]
    if first.startswith("$"):
        return _make(("operation", None, None, _operation_letter(first[1:], "system", None, method)))
    if count == 1:
        if first == "_history":
            return _make(("history-system", None, None, "s"))
        if first == "_search":
            return _make(("search-system", None, None, "s"))
        name = _TYPE_LEVEL.get(method, "unknown")
        return _make((name, first, None, INTERACTION_LETTER.get(name)))
    resource_type, second, third = first, parts[1], parts[2]  # three segments or more from here
    if count == 3:
        if third.startswith("$"):
            letter = _operation_letter(third[1:], "instance", resource_type, method)
            return _make(("operation", resource_type, second, letter))
        if third == "_history":
            return _make(("history-instance", resource_type, second, "r"))
        return _make(("search-type", third, None, "s"))  # compartment search
    if count == 4 and third == "_history":
        return _make(("vread", resource_type, second, "r"))
    return _make(("unknown", resource_type, second, None))


def _outcome_response(status: int, code: str, diagnostics: str, headers: dict | None = None):
    body = fjson.dumps(operation_outcome([issue("error", code, diagnostics)]))
    all_headers = [(b"content-type", b"application/fhir+json; charset=utf-8"),
                   (b"content-length", str(len(body)).encode())]
    for name, value in (headers or {}).items():
        all_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    async def respond(send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": all_headers})
        await send({"type": "http.response.body", "body": body})

    return respond


_HEADERS_TOO_LARGE = _outcome_response(431, "too-costly", "the request headers are too large")


class SecurityMiddleware:
    def __init__(self, app, settings, tokens=None, guard=None, audit=None, endpoints=None):
        self.app = app
        #: (method, path) → Starlette endpoint answered here (the OAuth token and SMART configuration)
        self.endpoints = endpoints or {}
        self.endpoint_paths = frozenset(path for _, path in self.endpoints)
        self.max_url = settings.max_url_bytes
        self.max_headers = settings.max_header_bytes
        self.tokens = tokens
        self.guard = guard
        self.audit = audit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "replace")
        if len(raw_path) + len(scope.get("query_string") or b"") > self.max_url:
            return await _outcome_response(414, "too-costly", f"the URL is longer than {self.max_url} bytes")(send)
        headers = scope.get("headers") or ()
        if len(headers) > 200:
            return await _HEADERS_TOO_LARGE(send)
        size, authorization = 0, None
        for name, value in headers:  # one pass: the size, and the Authorization header (the first one)
            size += len(name) + len(value)
            if name == b"authorization" and authorization is None:
                authorization = value
        if size > self.max_headers:
            return await _HEADERS_TOO_LARGE(send)
        if self.tokens is None and self.audit is None:
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path in self.endpoint_paths:
            return await self._endpoint(scope, receive, send)
        if path in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        if self.audit is not None:
            return await self._audited(scope, receive, send, headers, authorization)
        return await self._secured(scope, receive, send, headers, authorization)

    async def _endpoint(self, scope, receive, send):
        endpoint = self.endpoints.get((scope["method"], scope["path"]))
        if endpoint is None:
            allowed = ", ".join(sorted(m for m, p in self.endpoints if p == scope["path"]))
            return await _outcome_response(405, "not-supported", f"{scope['path']} allows {allowed}",
                                           {"Allow": allowed})(send)
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    async def _secured(self, scope, receive, send, headers, authorization):
        """A request to the FHIR API with authentication on and no audit trail."""
        caller, _, refusal = self._authorize(scope["method"], scope["path"], headers, authorization)
        if refusal is not None:
            return await refusal[1](send)
        tokens = set_current((caller, self.guard))
        try:
            await self.app(scope, receive, send)
        finally:
            reset_current(tokens)

    async def _audited(self, scope, receive, send, headers, authorization):
        """A request to the FHIR API with the audit trail on (authentication on or off): an audit record of
        the request, its caller and outcome, refusals included, queued once the response is sent."""
        path, method, audit = scope["path"], scope["method"], self.audit
        if audit.indexer is None:  # only an indexer in the audit thread waits for requests in flight
            audit.active()
        caller = interaction = refusal = tokens = None
        status = 0

        def send_capturing(message):
            # returns send's own awaitable: no coroutine of its own per message
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            if self.tokens is not None:
                caller, interaction, refusal = self._authorize(method, path, headers, authorization)
            else:
                interaction = classify(method, path, headers)
            if refusal is not None:
                status = refusal[0]
                return await refusal[1](send)
            # anyone may read AuditEvents with auth off; with it on, administrators only
            if (caller is None or caller.admin) and audit.pending and _reads_audit(interaction, scope):
                await run_in_threadpool(audit.catch_up)
            if caller is not None:
                tokens = set_current((caller, self.guard))
            await self.app(scope, receive, send_capturing)
        finally:
            if tokens is not None:
                reset_current(tokens)
            client = scope.get("client")
            if interaction is None:  # classifying failed: the record says "unknown"
                interaction = _UNKNOWN
            query = scope.get("query_string") if interaction.name.startswith("search") else None
            # a request row (audit.ROW_FIELDS): one tuple display, made per request
            audit.record((time_ns(), method, path, client[0] if client else None, status or 500, interaction.name,
                          interaction.resource_type, interaction.id, query.decode("latin-1") if query else None,
                          caller.identity if caller is not None else None,
                          refusal[2] if refusal is not None else None))

    def _authorize(self, method: str, path: str, headers, authorization: bytes | None):
        """(caller, interaction, refusal): refusal is None or (status, responder, reason)."""
        interaction = classify(method, path, headers)
        try:
            caller = self.tokens.verify(authorization)
        except NoBearerToken:
            reason = "this server requires an OAuth 2.0 bearer token (SMART Backend Services)"
            return None, interaction, (401, _outcome_response(401, "login", reason, {
                "WWW-Authenticate": 'Bearer realm="fhir"'}), "no bearer token")
        except InvalidToken as exc:
            return None, interaction, (401, _outcome_response(401, "login", f"invalid access token: {exc}", {
                "WWW-Authenticate": 'Bearer realm="fhir", error="invalid_token"'}), f"invalid token: {exc}")
        try:
            self._check(caller, interaction)
        except FhirError as error:
            diagnostics = error.issues[0].get("diagnostics", "refused")
            return caller, interaction, (error.status, _outcome_response(
                error.status, error.issues[0].get("code", "forbidden"), diagnostics), diagnostics)
        return caller, interaction, None

    def _check(self, caller, interaction: Interaction) -> None:
        name, resource_type, id, letter = interaction
        if resource_type is not None and resource_type not in RESOURCE_TYPES:
            return  # the router answers 404 for unknown types
        policy = self.guard.policy
        if resource_type in policy.admin_only and not caller.admin:
            raise FhirError(403, f"{resource_type} is available to platform administrators only", "forbidden")
        if name in _SCOPE_ONLY:  # the common interactions: the rest is checked where the data is read or written
            if not caller.can(letter, resource_type):
                raise forbidden_scope(letter, resource_type)
            return
        if name == "history-system" and not caller.admin:
            raise FhirError(403, "system history is available to platform administrators only", "forbidden")
        if name == "history-type" and policy.is_restricted(caller, resource_type):
            raise FhirError(403, f"the history of all {resource_type} resources is available to platform "
                                 "administrators only; read the history of one resource instead", "forbidden")
        if resource_type is None or letter is None:
            return  # system search/transaction: checked per type/entry in the guarded store
        if name == "update":
            if not (caller.can("u", resource_type) or caller.can("c", resource_type)):
                raise forbidden_scope("u", resource_type)
        elif not caller.can(letter, resource_type):
            raise forbidden_scope(letter, resource_type)
        if id is None:
            return
        if name in ("history-instance", "operation"):
            self.guard.check_read(resource_type, id, caller)
        elif name in ("update", "patch", "delete"):
            # a hidden resource answers 404 before its body is parsed, validated or patched
            with self.guard.store.session() as session:
                self.guard.check_visible_in(session, resource_type, id, caller, existing_only=True)


#: interactions whose only check before the route is the scope letter: reads and vreads are checked in the
#: session that reads (``check_client_read``), searches in the guarded search, creates in the guarded write
_SCOPE_ONLY = frozenset(("read", "vread", "search-type", "create"))


#: system-level interactions that may return AuditEvents (searches, history, Bundle entries, $export)
_SYSTEM_READS = frozenset(("search-system", "history-system", "transaction", "operation"))


def _reads_audit(interaction: Interaction, scope) -> bool:
    """May this request return AuditEvents? Then the audit journal is indexed first (see ``AuditWriter``)."""
    if interaction.resource_type == "AuditEvent" or b"AuditEvent" in (scope.get("query_string") or b""):
        return True
    return interaction.resource_type is None and interaction.name in _SYSTEM_READS

