"""One settings object, read once from the CLI and the environment.

Nothing else in the package reads environment variables; components receive the
settings they need from the app factory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _secret(env) -> str:
    """The token-signing secret: from FHIR_AUTH_TOKEN_SECRET, or the file FHIR_AUTH_TOKEN_SECRET_FILE names."""
    if env.get("FHIR_AUTH_TOKEN_SECRET"):
        return env["FHIR_AUTH_TOKEN_SECRET"]
    if env.get("FHIR_AUTH_TOKEN_SECRET_FILE"):
        return Path(env["FHIR_AUTH_TOKEN_SECRET_FILE"]).read_text(encoding="utf-8").strip()
    return ""


def _extra(env) -> dict:
    """Component settings without a field of their own: regional referral rule-set directories
    (``FHIR_REFERRAL_RULES``, path-separated) and subscription retry delays in seconds
    (``FHIR_SUBSCRIPTION_RETRY_DELAYS``, comma-separated)."""
    extra: dict = {}
    if env.get("FHIR_REFERRAL_RULES"):
        extra["referral_rules_dirs"] = [p for p in env["FHIR_REFERRAL_RULES"].split(os.pathsep) if p]
    if env.get("FHIR_SUBSCRIPTION_RETRY_DELAYS"):
        extra["subscription_retry_delays"] = [float(p) for p in env["FHIR_SUBSCRIPTION_RETRY_DELAYS"].split(",") if p]
    return extra


#: the values that turn a boolean environment setting on
_ON = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./data")
    #: store URL: ``sqlite:///path/to/fhir.db`` or ``mongodb://host/dbname``; empty → SQLite in data_dir
    store_url: str = ""
    #: public base URL of the FHIR endpoint (used in Location, fullUrl and Bundle links)
    base_url: str = ""
    #: largest request body accepted, in bytes (413 beyond)
    max_body_bytes: int = 16 * 1024 * 1024
    #: largest number of entries in a batch/transaction Bundle
    max_bundle_entries: int = 5000
    default_page_size: int = 20
    max_page_size: int = 1000
    #: require the IG profiles for referral resources on write
    require_profiles: bool = False
    #: serve the R4 core SearchParameters as resources (GET /SearchParameter); written once per store
    serve_core_search_parameters: bool = True
    #: SMART backend-services authentication (off: open, loopback-only development mode)
    auth_enabled: bool = False
    #: registered clients (JSON); empty → <data_dir>/clients.json
    auth_clients_file: str = ""
    #: secret signing access tokens (shared by all workers); empty → <data_dir>/auth-token-secret, created once
    auth_token_secret: str = ""
    auth_token_lifetime: int = 300
    #: consortium access policy (JSON); empty → the policy shipped in fhir_server/security/policy.json
    auth_policy_file: str = ""
    #: write an AuditEvent per request; None → on exactly when authentication is on
    audit_enabled: bool | None = None
    #: who turns the audit journal into AuditEvents: ``process`` (an indexer process beside the server),
    #: ``thread`` (the server's audit thread, when idle) or ``auto`` (a process when this one may run on
    #: more than one CPU and opened a store other processes can open too)
    audit_indexer: str = "auto"
    #: FastAPI's OpenTelemetry instrumentation (spans, metrics and logs through the global providers); off,
    #: it costs nothing, on, every request first asks whether a provider is configured (~3 µs)
    telemetry: bool = False
    max_url_bytes: int = 8192
    max_header_bytes: int = 32768
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.data_dir, Path):
            object.__setattr__(self, "data_dir", Path(self.data_dir))

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        env = os.environ
        settings = cls(
            host=env.get("FHIR_HOST", cls.host),
            port=_env_int("FHIR_PORT", cls.port),
            data_dir=Path(env.get("FHIR_DATA_DIR", str(cls.data_dir))),
            store_url=env.get("FHIR_STORE", ""),
            base_url=env.get("FHIR_BASE_URL", ""),
            max_body_bytes=_env_int("FHIR_MAX_BODY_BYTES", cls.max_body_bytes),
            max_bundle_entries=_env_int("FHIR_MAX_BUNDLE_ENTRIES", cls.max_bundle_entries),
            require_profiles=env.get("FHIR_REQUIRE_PROFILES", "").lower() in ("1", "true", "yes"),
            serve_core_search_parameters=env.get("FHIR_CORE_SEARCH_PARAMETERS", "1").lower()
            not in ("0", "false", "no", "off"),
            auth_enabled=env.get("FHIR_AUTH", "").lower() in _ON,
            auth_clients_file=env.get("FHIR_AUTH_CLIENTS", ""),
            auth_token_secret=_secret(env),
            auth_token_lifetime=_env_int("FHIR_AUTH_TOKEN_LIFETIME", cls.auth_token_lifetime),
            auth_policy_file=env.get("FHIR_AUTH_POLICY", ""),
            audit_enabled=(env["FHIR_AUDIT"].lower() in _ON) if env.get("FHIR_AUDIT") else None,
            audit_indexer=env.get("FHIR_AUDIT_INDEXER", cls.audit_indexer).lower(),
            telemetry=env.get("FHIR_TELEMETRY", "").lower() in _ON,
            extra=_extra(env),
        )
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in overrides:
            overrides["data_dir"] = Path(overrides["data_dir"])
        return replace(settings, **overrides)

    @property
    def clients_path(self) -> Path:
        return Path(self.auth_clients_file) if self.auth_clients_file else self.data_dir / "clients.json"

    @property
    def audit_on(self) -> bool:
        return self.auth_enabled if self.audit_enabled is None else self.audit_enabled

    def audit_indexer_url(self, store_url: str | None) -> str | None:
        """The store URL to hand an indexer process, or None to index in the server; ``store_url`` is the
        URL the app opened its store from (None: it was given a store object)."""
        if self.audit_indexer not in ("auto", "process", "thread"):
            raise ValueError(f"FHIR_AUDIT_INDEXER must be auto, process or thread, not {self.audit_indexer!r}")
        if self.audit_indexer == "thread" or not store_url or store_url.startswith("mongomock:") \
                or store_url.endswith(":memory:"):
            return None
        if self.audit_indexer == "auto":
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            return store_url if cpus > 1 else None
        return store_url

    @property
    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.data_dir / 'fhir.db').resolve()}"
