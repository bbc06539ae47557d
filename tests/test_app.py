"""The application's own settings: FastAPI's OpenTelemetry instrumentation only when asked for."""

from __future__ import annotations

from fastapi.testclient import TestClient
from opentelemetry import trace

from fhir_server.app import create_app
from fhir_server.config import Settings


def _provider_lookups(monkeypatch, settings: Settings) -> int:
    """How often serving two requests asked OpenTelemetry for its global tracer provider."""
    calls = []
    real = trace.get_tracer_provider

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counting)
    with TestClient(create_app(settings)) as client:
        before = len(calls)  # start-up may look once
        assert client.get("/metadata").status_code == 200
        assert client.get("/Patient/none").status_code == 404
        return len(calls) - before


def test_telemetry_is_off_by_default_and_costs_requests_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("FHIR_TELEMETRY", raising=False)
    settings = Settings.from_env(data_dir=tmp_path)
    assert settings.telemetry is False
    assert _provider_lookups(monkeypatch, settings) == 0


def test_fhir_telemetry_turns_fastapi_instrumentation_on(tmp_path, monkeypatch):
    monkeypatch.setenv("FHIR_TELEMETRY", "1")
    settings = Settings.from_env(data_dir=tmp_path)
    assert settings.telemetry is True
    assert _provider_lookups(monkeypatch, settings) >= 2  # asked on every request
