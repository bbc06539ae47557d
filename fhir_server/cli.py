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
    if not _loopback(settings.host):
        log.warning("listening on %s: this server has no authentication configured; anyone who can reach "
                    "this address can read and write every resource", settings.host)
    log.info("store: %s", settings.resolved_store_url.split("@")[-1])
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level,
                access_log=args.access_log, workers=1)
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
    serve.set_defaults(func=_serve)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="fhir-server", description="FHIR R4 server for referral exchange")
    subparsers = root.add_subparsers(dest="command", required=True)
    _add_serve(subparsers)
    from .ig.cli import add_parser as add_ig

    add_ig(subparsers)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
