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
        )
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in overrides:
            overrides["data_dir"] = Path(overrides["data_dir"])
        return replace(settings, **overrides)

    @property
    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.data_dir / 'fhir.db').resolve()}"
