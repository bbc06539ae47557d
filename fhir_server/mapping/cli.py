"""``fhir-server convert`` and ``fhir-server mllp``, and ``serve --mllp-port``.

``convert FILE…`` maps HL7 v2 messages or XML documents (detected) and prints the transaction
Bundle (one file) or one Bundle per line (several, with a progress bar on stderr); ``--commit``
writes them through the repository instead, as ``$ingest`` does.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from pathlib import Path

from fhir_server.config import Settings


def _settings(args) -> Settings:
    return Settings.from_env(data_dir=getattr(args, "data_dir", None), store_url=getattr(args, "store", None))


def _converter(args):
    from fhir_server.mapping.convert import Converter, MappingConfig

    config = MappingConfig(mappings_dir=args.mappings) if getattr(args, "mappings", None) else MappingConfig()
    return Converter(config)


def _progress(done: int, total: int, failed: int) -> None:
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} failed {failed}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _convert(args) -> int:
    from fhir_server.errors import FhirError
    from fhir_server.formats.json import dumps
    from fhir_server.mapping.errors import MappingError

    logging.basicConfig(level=logging.ERROR if len(args.files) > 1 else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(message)s")
    converter = _converter(args)
    ingestor = None
    if args.commit:
        from fhir_server.app import build_repository
        from fhir_server.mapping.ingest import Ingestor

        ingestor = Ingestor(build_repository(_settings(args)), converter)
    many = len(args.files) > 1
    failed = 0
    for number, name in enumerate(args.files, 1):
        try:
            raw = Path(name).read_bytes()
            if ingestor is not None and raw.lstrip()[:3] == b"MSH":
                outcome = ingestor.ingest_v2(raw, args.encoding)
                if outcome.code != "AA":
                    raise MappingError(outcome.text)
                if not many:
                    sys.stdout.write(outcome.ack.replace("\r", "\n"))
            elif ingestor is not None:
                result = converter.convert(raw, args.encoding)
                response = ingestor.repository.process_bundle(result.bundle)
                if not many:
                    sys.stdout.buffer.write(dumps(response, pretty=True) + b"\n")
            else:
                result = converter.convert(raw, args.encoding)
                sys.stdout.buffer.write(dumps(result.bundle, pretty=not many) + b"\n")
        except (OSError, MappingError, FhirError) as exc:
            failed += 1
            sys.stderr.write(("\n" if many else "") + f"{name}: {exc}\n")
        if many:
            _progress(number, len(args.files), failed)
    return 1 if failed else 0


async def _run_listener(settings: Settings, host: str, port: int, encoding: str | None, started: threading.Event | None = None):
    from fhir_server.app import build_repository
    from fhir_server.mapping.convert import Converter, MappingConfig
    from fhir_server.mapping.ingest import Ingestor
    from fhir_server.mapping.mllp import MllpServer

    repository = build_repository(settings)
    server = MllpServer(Ingestor(repository, Converter(MappingConfig.from_settings(settings))), host, port, encoding)
    await server.start()
    if started is not None:
        started.set()
    await server.serve_forever()


def _mllp(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_run_listener(_settings(args), args.host, args.port, args.encoding))
    except KeyboardInterrupt:
        pass
    return 0


def _with_mllp(serve):
    """``serve --mllp-port N``: the MLLP listener runs beside the HTTP server, on the same store."""

    def run(args) -> int:
        if getattr(args, "mllp_port", None):
            settings = Settings.from_env(data_dir=args.data_dir, store_url=args.store)
            started = threading.Event()
            thread = threading.Thread(target=lambda: asyncio.run(_run_listener(
                settings, args.mllp_host, args.mllp_port, args.mllp_encoding, started)), daemon=True, name="mllp")
            thread.start()
            started.wait(30)
        return serve(args)

    return run


def add_parser(subparsers) -> None:
    convert = subparsers.add_parser("convert", help="map HL7 v2 messages / XML documents to FHIR transaction Bundles")
    convert.add_argument("files", nargs="+", metavar="FILE")
    convert.add_argument("--encoding", help="character set of HL7 v2 files (default: MSH-18, else UTF-8, else GB18030)")
    convert.add_argument("--commit", action="store_true", help="commit through the server's store instead of printing")
    convert.add_argument("--mappings", help="a mappings directory with site dialects (default: the shipped mappings)")
    convert.add_argument("--data-dir", default=None, help="data directory of the SQLite store (with --commit)")
    convert.add_argument("--store", default=None, help="store URL (with --commit)")
    convert.set_defaults(func=_convert)

    mllp = subparsers.add_parser("mllp", help="run the HL7 v2 MLLP listener")
    mllp.add_argument("--host", default="127.0.0.1")
    mllp.add_argument("--port", type=int, default=2575)
    mllp.add_argument("--encoding", default=None, help="character set of this endpoint's senders (checked against MSH-18)")
    mllp.add_argument("--data-dir", default=None)
    mllp.add_argument("--store", default=None)
    mllp.set_defaults(func=_mllp)

    serve = subparsers.choices.get("serve")
    if serve is not None:
        serve.add_argument("--mllp-port", type=int, default=None, help="also run the MLLP listener on this port")
        serve.add_argument("--mllp-host", default="127.0.0.1")
        serve.add_argument("--mllp-encoding", default=None)
        serve.set_defaults(func=_with_mllp(serve.get_default("func")))
