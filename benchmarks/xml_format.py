"""FHIR XML conversion: microseconds per resource each way, and a round trip over a folder.

Times (CPU) ``resource_to_xml`` (JSON dict -> XML bytes) and ``xml_to_resource`` (XML bytes ->
JSON dict) on spec examples from ``tests/fixtures/xml``. With ``--examples DIR`` it also
converts every resource JSON file in DIR (e.g. the unpacked ``hl7.fhir.r4.examples``
package) JSON -> XML -> JSON and counts exact round trips (same dict, and the same JSON
text, i.e. decimals as written and keys in element order), listing what differs.

    python benchmarks/xml_format.py
    python benchmarks/xml_format.py --examples /path/to/hl7.fhir.r4.examples/package
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import timeit
from pathlib import Path

from fhir_server.errors import FhirError
from fhir_server.formats import json as fhir_json
from fhir_server.formats.xml import resource_to_xml, xml_to_resource

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "xml"
SAMPLES = ("Patient-example.json", "Observation-decimal.json", "Bundle-bundle-transaction.json")


def per_call_us(function, number: int) -> float:
    """CPU microseconds per call (process time, so other load on the machine does not count)."""
    return min(timeit.repeat(function, number=number, repeat=5, timer=time.process_time)) / number * 1e6


def timings(number: int) -> None:
    print(f"{'resource':34} {'bytes(xml)':>10} {'json->xml µs':>13} {'xml->json µs':>13}")
    for name in SAMPLES:
        resource = fhir_json.loads((FIXTURES / name).read_bytes())
        xml = resource_to_xml(resource)
        xml_to_resource(xml)  # type metadata built once, outside the timing
        to_xml = per_call_us(lambda: resource_to_xml(resource), number)
        from_xml = per_call_us(lambda: xml_to_resource(xml), number)
        print(f"{name:34} {len(xml):>10} {to_xml:>13.0f} {from_xml:>13.0f}")


def round_trip(folder: Path, pretty: bool, show: int) -> None:
    counts: collections.Counter = collections.Counter()
    failures: dict[str, list[str]] = collections.defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        resource = fhir_json.loads(path.read_bytes())
        if not isinstance(resource, dict) or "resourceType" not in resource:
            continue
        counts["resources"] += 1
        try:
            back = xml_to_resource(resource_to_xml(resource, pretty=pretty), max_bytes=None)
        except FhirError as exc:
            counts["refused"] += 1
            failures["refused"].append(f"{path.name}: {exc.issues[0]['diagnostics'][:120]}")
            continue
        if back != resource:
            counts["different"] += 1
            failures["different"].append(path.name)
            continue
        counts["same dict"] += 1
        if fhir_json.dumps(back) == fhir_json.dumps(resource):
            counts["same JSON text"] += 1
        else:
            failures["same dict, other key order"].append(path.name)
    print(dict(counts))
    for kind, names in failures.items():
        print(f"{kind}: {len(names)}")
        for name in names[:show]:
            print("   ", name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=1000, help="calls per timing")
    parser.add_argument("--examples", type=Path, help="folder of FHIR JSON resources to round-trip")
    parser.add_argument("--pretty", action="store_true", help="round-trip through indented XML")
    parser.add_argument("--show", type=int, default=20, help="failures to list per kind")
    args = parser.parse_args(argv)
    timings(args.number)
    if args.examples:
        round_trip(args.examples, args.pretty, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
