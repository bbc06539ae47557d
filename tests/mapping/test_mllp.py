"""The MLLP listener over a real socket: 1,000 frames with duplicates and broken ones."""

import asyncio
import random
import socket

from fhir_server.mapping.hl7v2.parser import parse_message
from fhir_server.mapping.ingest import Ingestor
from fhir_server.mapping.mllp import END, START, MllpClient, MllpServer, frame
from tests.mapping.messages import adt_a04

GOOD, DUPLICATES, BROKEN_MESSAGES, BROKEN_FRAMES = 880, 80, 30, 10


def _workload():
    """(payload, expected MSA-1, expected MSA-2 or None) in a shuffled but reproducible order."""
    rng = random.Random(7)
    good = [(adt_a04(f"M{i:05d}", f"1101011980{i:08d}", "钱^瑋").encode("gb18030"), "AA", f"M{i:05d}") for i in range(GOOD)]
    duplicates = [rng.choice(good) for _ in range(DUPLICATES)]
    broken = [
        (b"not hl7 at all", "AR", ""),
        (b"MSH|^~\\&|HIS|QXRMYY|||20261123||ADT^A04", "AR", ""),
        ("MSH|^~\\&|HIS|QXRMYY|||20261123||ORU^R01|B1|P|2.5\rPID|1\r".encode(), "AR", "B1"),
        ("MSH|^~\\&|HIS|QXRMYY|||20261123||ADT^A04|B2|P|2.5\rPID|1||X^^^GMSFZ^ID||A||19801399\r".encode(), "AE", "B2"),
    ]
    broken = [broken[i % len(broken)] for i in range(BROKEN_MESSAGES)]
    items = [(frame(p), code, cid) for p, code, cid in good[: GOOD // 2]]
    rest = [(frame(p), code, cid) for p, code, cid in good[GOOD // 2 :] + duplicates + broken]
    rng.shuffle(rest)
    # frames without a start block: answered AR, the connection goes on
    rest += [(b"MSH|no start block" + END, "AR", "")] * BROKEN_FRAMES
    rng.shuffle(rest)
    return items + rest


def _run_client(port: int, items) -> list[tuple[str, str, str, str]]:
    results = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        buffer = b""
        for data, code, control_id in items:
            sock.sendall(data)
            while END not in buffer:
                buffer += sock.recv(65536)
            reply, _, buffer = buffer.partition(END)
            ack = parse_message(reply[reply.index(START) + 1 :].decode("gb18030"))
            results.append((code, control_id, ack.first("MSA").get(1), ack.first("MSA").get(2)))
    return results


def test_thousand_messages_over_mllp(repository, converter):
    async def scenario():
        server = MllpServer(Ingestor(repository, converter), port=0, charset="gb18030")
        await server.start()
        try:
            items = _workload()
            assert len(items) == 1000
            # two senders at once, each on its own connection
            halves = [items[0::2], items[1::2]]
            results = await asyncio.gather(*(asyncio.to_thread(_run_client, server.port, half) for half in halves))
            # a client that hangs up mid-frame, and one that sends an oversized junk stream, do not hurt it
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(START + b"MSH|^~\\&|half a frame")
            after = await asyncio.to_thread(lambda: MllpClient("127.0.0.1", server.port).send(
                adt_a04("LAST", "110101198099999999", "孙^瑋").encode("gb18030")))
            return [r for half in results for r in half], after, dict(server.stats)
        finally:
            await server.stop()

    results, after, stats = asyncio.run(scenario())
    for expected, control_id, code, acked_id in results:
        assert code == expected, (control_id, code)
        if control_id:
            assert acked_id == control_id
    assert parse_message(after.decode("gb18030")).first("MSA").get(1) == "AA"  # still up
    with repository.store.session() as session:
        # every version ever written: one per good message means each was applied exactly once
        _, patient_versions = session.history("Patient", count=1)
        _, message_records = session.history("Basic", count=1)
        [one] = repository.find(session, "Patient", "identifier=urn:oid:2.16.156.10011.1.3|110101198000000007")
    assert patient_versions == GOOD + 1 and message_records == GOOD + 1
    assert one.version == 1
    assert stats["duplicates"] == DUPLICATES and stats["broken_frames"] >= BROKEN_FRAMES


def test_client_retries_until_a_listener_answers(repository, converter):
    async def scenario():
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        client = MllpClient("127.0.0.1", port, timeout=5, retries=5, backoff=0.1)
        sending = asyncio.create_task(asyncio.to_thread(client.send, adt_a04("R1", "110101198011111111").encode()))
        await asyncio.sleep(0.15)  # the first attempts find nobody listening
        server = MllpServer(Ingestor(repository, converter), port=port)
        await server.start()
        try:
            return await sending
        finally:
            client.close()
            await server.stop()

    ack = asyncio.run(scenario())
    assert parse_message(ack.decode()).first("MSA").get(1) == "AA"
