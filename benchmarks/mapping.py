"""Legacy message throughput: parse+map in process, and MLLP ingest with commit, next to python-hl7.

Targets on the reference machine (one core): parse+map >= 1,000 REF^I12 messages/s; MLLP ingest with
commit >= 200 messages/s. Every message gets its own MSH-10 and referral number, so nothing is
skipped as a duplicate. Rates are given on wall time and, for the in-process runs, on CPU time of
this process (what one core does when other work shares the machine). MLLP senders are separate
processes. The ingest rate is then given as a share of python-hl7's: each of ``--rounds`` MLLP REF^I12
runs between two python-hl7 runs, the median share printed (the target share is 200 of ~1,500).

    python benchmarks/mapping.py                 # all runs, default sizes
    python benchmarks/mapping.py --messages 2000 --ingest 300 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
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
from fhir_server.mapping.mllp import MllpServer, frame  # noqa: E402

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


def hl7_timing(messages: list[bytes]) -> tuple[float, float] | None:
    """(wall, CPU) seconds python-hl7, the baseline, takes to parse ``messages``; None when not installed."""
    try:
        import hl7
    except ImportError:
        return None
    return timed(lambda m: hl7.parse(m.decode("gb18030")), messages)


def in_process(count: int) -> list[tuple[str, float, float]]:
    messages = ref_messages(count)
    converter = Converter()
    for message in messages[:50]:  # warm caches and imports
        converter.convert_v2(message)
    rows = []

    baseline = hl7_timing(messages)
    if baseline is None:
        rows.append(("python-hl7 parse: not installed (pip install -e '.[bench]')", 0.0, 0.0))
    else:
        rows.append(("python-hl7 parse (decoded text)", rate(count, baseline[0]), rate(count, baseline[1])))

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
            try:
                return await asyncio.to_thread(drive, server.port, messages, connections, Path(directory))
            finally:
                await server.stop()

        seconds, accepted = asyncio.run(run())
        repository.store.close()
    return f"MLLP ingest + commit {label}, {connections} connection(s)", rate(len(messages), seconds), accepted


#: one MLLP sender in its own process (as an HIS would be): connects, says "ready", waits for "go" on stdin,
#: sends its frames one at a time waiting for each ACK, prints how many were AA
SENDER = r"""
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
data = open(path, "rb").read()
frames = [f + b"\x1c\r" for f in data.split(b"\x1c\r") if f]
accepted, buffer = 0, b""
with socket.create_connection(("127.0.0.1", port)) as sock:
    print("ready", flush=True)
    sys.stdin.readline()
    for message in frames:
        sock.sendall(message)
        while b"\x1c\r" not in buffer:
            buffer += sock.recv(65536)
        reply, _, buffer = buffer.partition(b"\x1c\r")
        accepted += b"MSA|AA|" in reply
print(accepted, flush=True)
"""


def drive(port: int, messages: list[bytes], connections: int, directory: Path) -> tuple[float, int]:
    """Send ``messages`` over ``connections`` sender processes; (seconds from "go" to the last ACK, AA count).

    The senders run outside this process so their socket work does not share the server's GIL."""
    senders = []
    for i in range(connections):
        batch = directory / f"sender-{i}.mllp"
        batch.write_bytes(b"".join(frame(message) for message in messages[i::connections]))
        senders.append(subprocess.Popen([sys.executable, "-c", SENDER, str(port), str(batch)], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE))
    for sender in senders:
        if sender.stdout.readline().strip() != "ready":
            raise SystemExit("an MLLP sender could not connect")
    start = time.perf_counter()
    for sender in senders:
        sender.stdin.write("go\n")
        sender.stdin.flush()
    counts = [int(sender.stdout.readline()) for sender in senders]
    seconds = time.perf_counter() - start
    for sender in senders:
        sender.wait()
    return seconds, sum(counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="messages for the in-process runs")
    parser.add_argument("--ingest", type=int, default=300, help="messages per MLLP ingest run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="MLLP REF^I12 runs, each between two python-hl7 runs, for the share of its rate")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print(f"{'run':60} {'msg/s (wall)':>14} {'msg/s (CPU)':>14}")
    baseline = 0.0
    for name, wall, cpu in in_process(args.messages):
        if name.startswith("python-hl7 parse ("):
            baseline = cpu
        print(f"{name:60} {wall:14,.0f} {cpu:14,.0f}")
    ingest_runs = {}
    for label, generate in (("REF^I12", ref_messages), ("ADT^A04", adt_messages)):
        messages = generate(args.ingest + WARMUP)
        messages, warmup = messages[:args.ingest], messages[args.ingest:]
        ingest_runs[label] = messages, warmup
        name, wall, cpu = in_process_ingest(label, messages, warmup)
        print(f"{name:60} {wall:14,.0f} {cpu:14,.0f}")
        for connections in (1, 4):
            name, wall, accepted = mllp_ingest(label, messages, connections, warmup)
            note = "" if accepted == len(messages) else f"  ({accepted}/{len(messages)} AA)"
            print(f"{name:60} {wall:14,.0f} {'':>14}{note}")
    print("targets: parse+map >= 1,000 REF^I12 msg/s on one core; MLLP ingest with commit >= 200 msg/s")
    if not baseline:
        return 0
    # The share of python-hl7's rate, each MLLP run next to its own baseline: on a shared machine the
    # baseline measured once at the start can be off by a third by the time the ingest runs.
    messages, warmup = ingest_runs["REF^I12"]
    parsed = ref_messages(args.messages)
    shares = []
    for round_ in range(args.rounds):
        before = rate(len(parsed), hl7_timing(parsed)[1])
        best = max(mllp_ingest("REF^I12", messages, connections, warmup)[1] for connections in (1, 4))
        after = rate(len(parsed), hl7_timing(parsed)[1])
        shares.append(best / ((before + after) / 2))
        print(f"round {round_ + 1}: MLLP ingest REF^I12 {best:,.0f} msg/s, python-hl7 {before:,.0f} / {after:,.0f} "
              f"msg/s before / after: {shares[-1]:.1%}")
    share = statistics.median(shares)
    print(f"MLLP ingest of REF^I12 is {share:.1%} of bare python-hl7 parsing (median of {len(shares)} rounds; "
          f"the targets were set where python-hl7 parsed ~{REFERENCE_HL7:,} msg/s: 200 msg/s is "
          f"{200 / REFERENCE_HL7:.1%}; on this machine that share is {200 / REFERENCE_HL7 * baseline:,.0f} msg/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
