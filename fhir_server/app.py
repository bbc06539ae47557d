"""The application factory: settings → store → repository → FastAPI app.

Everything stateful hangs off ``app.state`` (settings, store, repository), so several
workers can run side by side on a shared store and tests build isolated apps.
"""

from __future__ import annotations

import importlib
import logging
from contextlib import asynccontextmanager
from typing import Callable, Iterable

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from . import __version__, capabilities
from .config import Settings
from .errors import FhirError, issue, operation_outcome
from .formats import json as fjson
from .repository import Repository
from .store import Store, open_store

log = logging.getLogger("fhir_server")

#: modules whose import registers FHIR operations in fhir_server.api.operations
OPERATION_MODULES: list[str] = [
    "fhir_server.api.everything",
    "fhir_server.api.bulk_export",
    "fhir_server.validation.operations",
    "fhir_server.terminology.operations",
    "fhir_server.referral.operations",
    "fhir_server.subscriptions.operations",
    "fhir_server.mapping.operations",
]

#: zero-argument functions (dotted names) yielding conformance resources the server serves read-only
CONFORMANCE_SOURCES: list[str] = [
    "fhir_server.ig.loader.conformance_resources",
    "fhir_server.referral.definitions.operation_definitions",
    "fhir_server.mapping.conceptmaps.conformance_resources",
]


def _load(dotted: str) -> Callable:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build_repository(settings: Settings, store: Store | None = None) -> Repository:
    """A repository on the configured store with every write check wired in."""
    repository = Repository(store or open_store(settings.resolved_store_url), settings)
    from .validation.write_check import profile_write_check

    repository.add_write_check(profile_write_check(settings))
    from .referral import install as install_referral
    from .subscriptions import install as install_subscriptions

    install_referral(repository)
    install_subscriptions(repository)
    return repository


def conformance_resources() -> list[dict]:
    resources: list[dict] = []
    for source in CONFORMANCE_SOURCES:
        resources.extend(_load(source)())
    return resources


def _error_response(request: Request, status: int, outcome: dict, headers: dict | None = None) -> Response:
    from .api.negotiation import render

    try:
        return render(request, outcome, status, headers)
    except FhirError:  # e.g. an unsupported _format: answer in JSON rather than fail again
        return Response(fjson.dumps(outcome), status_code=status, headers=headers,
                        media_type="application/fhir+json; charset=utf-8")


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    for module in OPERATION_MODULES:
        importlib.import_module(module)
    repository = build_repository(settings, store)
    conformance = conformance_resources()
    seeded = list(conformance)
    if settings.serve_core_search_parameters:
        from .search.registry import conformance_resources as search_parameters

        seeded += [p for p in search_parameters() if p.get("url", "").startswith("http://hl7.org/fhir/")]
    if seeded:
        repository.seed(seeded)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        repository.store.close()

    app = FastAPI(title="FHIR R4 referral server", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json", lifespan=lifespan,
                  telemetry=None if settings.telemetry else {"tracing": False, "metrics": False, "logs": False})
    app.state.settings = settings
    #: the URL the store was opened from (None when the caller passed a store object)
    app.state.store_url = settings.resolved_store_url if store is None else None
    app.state.store = repository.store
    app.state.repository = repository
    statement_cache: dict[str, dict] = {}

    def capability_statement(base_url: str) -> dict:
        if base_url not in statement_cache:
            statement_cache[base_url] = capabilities.build(base_url, conformance)
        return statement_cache[base_url]

    app.state.capability_statement = capability_statement

    @app.exception_handler(FhirError)
    async def fhir_error(request: Request, exc: FhirError) -> Response:
        return _error_response(request, exc.status, exc.outcome, exc.headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        outcome = operation_outcome([issue("error", code, str(exc.detail))])
        return _error_response(request, exc.status_code, outcome)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _error_response(request, 400, operation_outcome([issue("error", "invalid", "invalid request")]))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        outcome = operation_outcome([issue("fatal", "exception", "internal server error")])
        return _error_response(request, 500, outcome)

    from .api.routes import install as install_routes
    from .security import install as install_security

    install_security(app)  # middleware, token endpoint and guarded store; before the catch-all routes
    install_routes(app)

    return app


def serve_app() -> FastAPI:
    """Factory for ``uvicorn --factory fhir_server.app:serve_app`` (settings from the environment)."""
    return create_app(Settings.from_env())


__all__ = ["create_app", "build_repository", "serve_app", "OPERATION_MODULES", "CONFORMANCE_SOURCES",
           "conformance_resources", "Iterable"]
