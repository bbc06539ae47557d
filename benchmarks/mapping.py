"""Legacy message throughput: parse+map in process, and MLLP ingest with commit, next to python-hl7.

Targets on the reference machine (one core): parse+map >= 1,000 REF^I12 messages/s; MLLP ingest with
commit >= 200 messages/s. Every message gets its own MSH-10 and referral number, so nothing is
skipped as a duplicate. Rates are given on wall time and, for the in-process runs, on CPU time of
this process (what one core does when other work shares the machine).

    python benchmarks/mapping.py                 # all runs, default sizes
    python benchmarks/mapping.py --messages 5000 --ingest 500
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_server.app import build_repository  # noqa: E402
from fhir_server.config import Settings  # noqa: E402
from fhir_server.mapping.convert import Converter  # noqa: E402
from fhir_server.mapping.hl7v2.encoding import decode_message  # noqa: E402
from fhir_server.mapping.hl7v2.parser import parse_message  # noqa: E402
from fhir_server.mapping.ingest import Ingestor  # noqa: E402
from fhir_server.mapping.mllp import END, MllpServer, frame  # noqa: E402

SAMPLES = ROOT / "mappings" / "samples"
MEMBERS = ROOT / "tests" / "fixtures" / "mapping" / "member-organizations.json"


def ref_messages(count: int) -> list[bytes]:
    raw = (SAMPLES / "ref_i12_gbk.hl7").read_bytes()
    return [raw.replace(b"QX20261123000001", b"QX%014d" % i).replace(b"ZZ2026112300001", b"ZZ%013d" % i) for i in range(count)]


def adt_messages(count: int) -> list[bytes]:
    template = ("MSH|^~\\&|HIS|QXRMYY^县人民医院|REFPLAT|PLATFORM|20261123093000||ADT^A04^ADT_A01|A{n:08d}|P|2.5||||||GB 18030-2000\r"
                "PID|1||1101011980{n:08d}^^^GMSFZ^ID~QX{n:08d}^^^QXRMYY^MR||钱^瑋||19800202|F|||东岗西路1号^^兰州市^甘肃省\r"
                "PV1|1|O|内科门诊^^^QXRMYY||||||||||||||||V{n:08d}^^^QXRMYY|||||||||||||||||||||||||202611230900\r")
    return [template.format(n=i).encode("gb18030") for i in range(count)]


WARMUP = 20  # messages ingested before each timed ingest run (not counted)
REFERENCE_HL7 = 1500  # python-hl7 msg/s on the machine the targets were measured on


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def timed(function, items) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
        function(item)
    return time.perf_counter() - wall, time.process_time() - cpu


def in_process(count: int) -> list[tuple[str, float, float]]:
    messages = ref_messages(count)
    converter = Converter()
    for message in messages[:50]:  # warm caches and imports
        converter.convert_v2(message)
    rows = []

    try:
        import hl7  # python-hl7, the baseline

        wall, cpu = timed(lambda m: hl7.parse(m.decode("gb18030")), messages)
        rows.append(("python-hl7 parse (decoded text)", rate(count, wall), rate(count, cpu)))
    except ImportError:
        rows.append(("python-hl7 parse: not installed (pip install -e '.[bench]')", 0.0, 0.0))

    def own_parse(message: bytes):
        decoded = decode_message(message)
        return parse_message(decoded.text, decoded.codec)

    wall, cpu = timed(own_parse, messages)
    rows.append(("fhir_server decode + parse", rate(count, wall), rate(count, cpu)))
    wall, cpu = timed(converter.convert_v2, messages)
    rows.append(("fhir_server parse + map REF^I12 -> Bundle", rate(count, wall), rate(count, cpu)))
    return rows


def in_process_ingest(label: str, messages: list[bytes], warmup: list[bytes]) -> tuple[str, float, float]:
    """Convert + commit without sockets: the cost of the commit path itself."""
    from fhir_server.formats.json import loads

    with tempfile.TemporaryDirectory() as directory:
        repository = build_repository(Settings(data_dir=Path(directory)))
        repository.process_bundle(loads(MEMBERS.read_bytes()))
        ingestor = Ingestor(repository)
        timed(ingestor.ingest_v2, warmup)  # first-use costs (model imports, validation shapes) as a server has paid
        wall, cpu = timed(ingestor.ingest_v2, messages)
        repository.store.close()
    return f"ingest + commit {label} in process", rate(len(messages), wall), rate(len(messages), cpu)


def mllp_ingest(label: str, messages: list[bytes], connections: int, warmup: list[bytes]) -> tuple[str, float, int]:
    from fhir_server.formats.json import loads

    logging.getLogger("fhir_server").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as directory:
        repository = build_repository(Settings(data_dir=Path(directory)))
        repository.process_bundle(loads(MEMBERS.read_bytes()))
        ingestor = Ingestor(repository)
        timed(ingestor.ingest_v2, warmup)

        async def run() -> tuple[float, int]:
            server = MllpServer(ingestor, port=0)
            await server.start()

            def client(batch: list[bytes]) -> int:
                accepted = 0
                with socket.create_connection(("127.0.0.1", server.port)) as sock:
                    buffer = b""
                    for message in batch:
                        sock.sendall(frame(message))
                        while END not in buffer:
                            buffer += sock.recv(65536)
                        reply, _, buffer = buffer.partition(END)
                        accepted += b"MSA|AA|" in reply
                return accepted

            try:
                start = time.perf_counter()
                counts = await asyncio.gather(*(asyncio.to_thread(client, messages[i::connections]) for i in range(connections)))
                return time.perf_counter() - start, sum(counts)
            finally:
                await server.stop()

        seconds, accepted = asyncio.run(run())
        repository.store.close()
    return f"MLLP ingest + commit {label}, {connections} connection(s)", rate(len(messages), seconds), accepted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="messages for the in-process runs")
    parser.add_argument("--ingest", type=int, default=300, help="messages per MLLP ingest run")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print(f"{'run':60} {'msg/s (wall)':>14} {'msg/s (CPU)':>14}")
    baseline = 0.0
    for name, wall, cpu in in_process(args.messages):
        if name.startswith("python-hl7 parse ("):
            baseline = cpu
        print(f"{name:60} {wall:14,.0f} {cpu:14,.0f}")
    best = 0.0
    for label, generate in (("REF^I12", ref_messages), ("ADT^A04", adt_messages)):
        messages = generate(args.ingest + WARMUP)
        messages, warmup = messages[:args.ingest], messages[args.ingest:]
        name, wall, cpu = in_process_ingest(label, messages, warmup)
        print(f"{name:60} {wall:14,.0f} {cpu:14,.0f}")
        for connections in (1, 4):
            name, wall, accepted = mllp_ingest(label, messages, connections, warmup)
            note = "" if accepted == len(messages) else f"  ({accepted}/{len(messages)} AA)"
            print(f"{name:60} {wall:14,.0f} {'':>14}{note}")
            if label == "REF^I12":
                best = max(best, wall)
    print("targets: parse+map >= 1,000 REF^I12 msg/s on one core; MLLP ingest with commit >= 200 msg/s")
    if baseline:
        print(f"MLLP ingest of REF^I12 is {best / baseline:.1%} of bare python-hl7 parsing in this run "
              f"(the targets were set where python-hl7 parsed ~{REFERENCE_HL7:,} msg/s: 200 msg/s is "
              f"{200 / REFERENCE_HL7:.1%}; on this machine that share is {200 / REFERENCE_HL7 * baseline:,.0f} msg/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
