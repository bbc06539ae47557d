"""The ``fhir-server`` command: ``serve`` and the subcommands other modules add.

Each subcommand module exposes ``add_parser(subparsers)`` and sets ``func`` on its parser;
this file only lists them.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from .config import Settings


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    settings = Settings.from_env(host=args.host, port=args.port, data_dir=args.data_dir, store_url=args.store,
                                 base_url=args.base_url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("fhir_server")
    if not settings.auth_enabled:
        if not _loopback(settings.host) and not args.insecure_no_auth:
            log.error("refusing to listen on %s without authentication: set FHIR_AUTH=1 (SMART backend services, "
                      "see docs/security.md) or pass --insecure-no-auth", settings.host)
            return 2
        log.warning("AUTHENTICATION IS OFF: anyone who can reach %s can read and write every resource "
                    "(development mode; set FHIR_AUTH=1 for production)", settings.host)
    log.info("store: %s", settings.resolved_store_url.split("@")[-1])
    from .store.mongo import StoreUnavailable

    try:
        app = create_app(settings)
    except StoreUnavailable as error:
        log.error("%s", error)
        return 2
    tls = {"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile} if args.ssl_certfile else {}
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level,
                access_log=args.access_log, workers=1, **tls)
    return 0


def _add_serve(subparsers) -> None:
    serve = subparsers.add_parser("serve", help="run the FHIR server")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1, env FHIR_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8080, env FHIR_PORT)")
    serve.add_argument("--data-dir", default=None, help="data directory for the SQLite store (env FHIR_DATA_DIR)")
    serve.add_argument("--store", default=None, help="store URL: sqlite:///path or mongodb://host/db (env FHIR_STORE)")
    serve.add_argument("--base-url", default=None, help="public base URL (env FHIR_BASE_URL)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--no-access-log", dest="access_log", action="store_false")
    serve.add_argument("--insecure-no-auth", action="store_true",
                       help="allow a non-loopback address with authentication off (never in production)")
    serve.add_argument("--ssl-certfile", default=None, help="TLS certificate (PEM) for uvicorn to serve HTTPS")
    serve.add_argument("--ssl-keyfile", default=None, help="TLS private key (PEM) for --ssl-certfile")
    serve.set_defaults(func=_serve)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="fhir-server", description="FHIR R4 server for referral exchange")
    subparsers = root.add_subparsers(dest="command", required=True)
    _add_serve(subparsers)
    from .security.clients import add_parser as add_clients

    add_clients(subparsers)
    from .ig.cli import add_parser as add_ig

    add_ig(subparsers)
    from .mapping.cli import add_parser as add_mapping

    add_mapping(subparsers)
    from .referral.cli import add_parser as add_rules

    add_rules(subparsers)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
