"""Security: SMART Backend Services authentication, scopes, the consortium access policy, audit.

:func:`install` wires it into an app built by ``fhir_server.app.create_app``. With
authentication off (the default) only the URL/header limits apply — plus the audit trail
when ``FHIR_AUDIT`` asks for it — and the CLI keeps such a server on loopback.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse

from .context import Caller, acting_as, current_caller

log = logging.getLogger("fhir_server.security")
_MAX_TOKEN_REQUEST = 64 * 1024


def install(app: FastAPI) -> None:
    """Add the security middleware, token endpoints and guarded store to ``app`` (before its routes)."""
    from .audit import AuditWriter
    from .clients import ClientRegistry
    from .guarded_store import Guard, GuardedStore
    from .middleware import SecurityMiddleware
    from .policy import Policy
    from .tokens import TokenService

    settings = app.state.settings
    repository = app.state.repository
    inner_store = repository.store
    # audit records are the server's own bookkeeping: written past the repository's pre-commit hooks and
    # commit listeners (workflow, subscriptions), straight into the store
    audit = AuditWriter(getattr(inner_store, "_store", inner_store),
                        indexer_url=settings.audit_indexer_url(app.state.store_url)) if settings.audit_on else None
    tokens = guard = None
    if settings.auth_enabled:
        guard = Guard(Policy.load(settings.auth_policy_file or None), inner_store)
        tokens = TokenService(settings, ClientRegistry(settings.clients_path))
        log.info("authentication on: SMART backend services, clients from %s", settings.clients_path)
    if audit is not None or guard is not None:
        store = GuardedStore(inner_store, guard, on_close=audit.close if audit else None)
        repository.store = store
        app.state.store = store
    app.state.audit = audit
    app.state.tokens = tokens
    app.state.guard = guard
    endpoints = _endpoints(tokens, audit) if tokens is not None else {}
    app.add_middleware(SecurityMiddleware, settings=settings, tokens=tokens, guard=guard, audit=audit,
                       endpoints=endpoints)
    if tokens is not None:
        _advertise(app)


def _endpoints(tokens, audit) -> dict:
    """The OAuth endpoints, by (method, path): the middleware answers them itself, so the FHIR routes
    are matched first on every other request."""
    from ..api.negotiation import base_url
    from .tokens import TOKEN_PATH, OAuthError, smart_configuration

    async def smart_config(request: Request):
        return JSONResponse(smart_configuration(base_url(request)))

    async def token(request: Request):
        event = {"at": time.time_ns(), "interaction": "token", "method": "POST", "path": TOKEN_PATH,
                 "address": request.client.host if request.client else None}
        try:
            declared = request.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > _MAX_TOKEN_REQUEST:
                raise OAuthError(400, "invalid_request", "the token request is too large")
            body = await request.body()
            if len(body) > _MAX_TOKEN_REQUEST:
                raise OAuthError(400, "invalid_request", "the token request is too large")
            media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
            if media != "application/x-www-form-urlencoded":
                raise OAuthError(400, "invalid_request", "the token request must be application/x-www-form-urlencoded")
            try:
                form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                raise OAuthError(400, "invalid_request", "the token request is not UTF-8") from None
            event["client_id"] = form.get("client_id") or None
            answer = tokens.issue(form, f"{base_url(request)}{TOKEN_PATH}")
            client = tokens.registry.get(_issuer(form))
            if client is not None:
                event.update(client_id=client.client_id, organization=client.organization)
            event["status"] = 200
            return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
        except OAuthError as error:
            event["status"], event["reason"] = error.status, error.description
            headers = {"Cache-Control": "no-store"}
            if error.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="fhir"'
            return JSONResponse(error.body(), status_code=error.status, headers=headers)
        finally:
            if audit is not None:
                audit.record(event)

    return {("GET", "/.well-known/smart-configuration"): smart_config, ("HEAD", "/.well-known/smart-configuration"):
            smart_config, ("POST", TOKEN_PATH): token}


def _issuer(form: dict) -> str:
    from .tokens import _unverified_claims

    try:
        return str(_unverified_claims(form.get("client_assertion", "")).get("iss", ""))
    except Exception:
        return ""


def _advertise(app: FastAPI) -> None:
    """Add the SMART security section to the generated CapabilityStatement."""
    from .tokens import capability_security

    build = app.state.capability_statement
    cache: dict[str, dict] = {}

    def with_security(base_url: str) -> dict:
        if base_url not in cache:
            statement = dict(build(base_url))
            rest = [dict(r) for r in statement.get("rest", [])]
            for entry in rest:
                entry["security"] = capability_security(base_url)
            statement["rest"] = rest
            cache[base_url] = statement
        return cache[base_url]

    app.state.capability_statement = with_security


__all__ = ["install", "Caller", "current_caller", "acting_as"]
