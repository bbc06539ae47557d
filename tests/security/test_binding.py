"""Development mode: without authentication the server stays on loopback unless explicitly forced."""

from __future__ import annotations

import pytest

from fhir_server.cli import main


@pytest.fixture
def runs(monkeypatch, tmp_path):
    """Record uvicorn.run calls instead of serving."""
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    for name in ("FHIR_AUTH", "FHIR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FHIR_DATA_DIR", str(tmp_path))
    return calls


def test_open_server_refuses_a_public_address(runs, caplog):
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert runs == []
    assert "refusing to listen on 0.0.0.0 without authentication" in caplog.text


def test_open_server_on_loopback_starts_and_says_it_is_open(runs, caplog):
    assert main(["serve", "--host", "127.0.0.1"]) == 0
    assert runs and runs[0]["host"] == "127.0.0.1"
    assert "AUTHENTICATION IS OFF" in caplog.text


def test_explicit_flag_forces_an_open_public_server(runs):
    assert main(["serve", "--host", "0.0.0.0", "--insecure-no-auth"]) == 0
    assert runs[0]["host"] == "0.0.0.0"


def test_auth_on_may_bind_anywhere_and_tls_files_pass_through(runs, monkeypatch, caplog):
    monkeypatch.setenv("FHIR_AUTH", "1")
    monkeypatch.setenv("FHIR_AUTH_TOKEN_SECRET", "s" * 40)
    assert main(["serve", "--host", "0.0.0.0", "--ssl-certfile", "cert.pem", "--ssl-keyfile", "key.pem"]) == 0
    assert runs[0]["ssl_certfile"] == "cert.pem" and runs[0]["ssl_keyfile"] == "key.pem"
    assert "AUTHENTICATION IS OFF" not in caplog.text
