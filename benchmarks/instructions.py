"""Instructions per request with auth and audit on, beside auth off, counted by callgrind.

``auth.py`` measures throughput, the figure the target is set in, but on a shared VM the same run
moves by a third from one minute to the next. An instruction count does not: this script runs the
two servers of ``auth.py`` (open; member with SMART auth, access policy and audit trail) under
``valgrind --tool=callgrind``, sends each the same read-by-id and create of a ServiceRequest over
HTTP, one after another on a keep-alive connection, and counts the server process's instructions
(all its threads: the request, the audit record, its journal) between a warm-up and the end of
``--requests`` requests. The open/auth ratio of instructions is the throughput ratio the request
path would give on a quiet machine where an instruction costs the same in both servers — which
cold caches do not quite grant (a longer path misses more; see docs/security.md § Cost).

The AuditEvent projection runs in the indexer process beside the server, which callgrind does not
follow; ``--projection`` counts it on its own: journal entries of member-read records indexed
as AuditEvents, the instructions per AuditEvent (two runs of different sizes, the difference).

    python benchmarks/instructions.py                    # ~4 min; needs valgrind
    python benchmarks/instructions.py --requests 200 --no-projection

Under callgrind a server runs ~50× slower, so the audit writer journals ~40 records a batch
instead of up to 500 under load: the audit's journal share is, if anything, overstated here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import auth  # noqa: E402  (benchmarks/auth.py: clients, tokens, seeding)
import rest  # noqa: E402

JSON = "application/fhir+json"


def callgrind(out: Path) -> tuple[str, ...]:
    return ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}")


def total(dump: Path) -> int:
    """The instruction total of one callgrind dump file."""
    match = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.M)
    if match is None:
        rest.fail(f"no instruction total in {dump}")
    return int(match.group(1))


def control(option: str, pid: int) -> None:
    done = subprocess.run(["callgrind_control", option, str(pid)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or "OK" not in done.stdout:
        rest.fail(f"callgrind_control {option} {pid} failed:\n{done.stdout}\n{done.stderr}")


def count(server: rest.Server, out: Path, method: str, path: str, body: bytes | None, token: str | None,
          requests: int, expect: int) -> float:
    """Instructions per request of ``server`` (running under callgrind, writing ``out``) over ``requests``
    requests sent one after another, after as many tenths of them as warm-up."""
    headers = {"Accept": JSON, "Content-Type": JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)

    def send(n: int) -> None:
        for _ in range(n):
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != expect:
                rest.fail(f"{method} {path} on {server.name} answered {response.status}: {answer[:300]!r}")

    send(max(20, requests // 10))
    time.sleep(1.0)  # the warm-up's audit records journaled before counting starts
    before = set(out.parent.glob(out.name + ".*"))
    control("-z", server.process.pid)
    send(requests)
    time.sleep(1.5)  # the writer gathers a quarter second (slower under callgrind) before it journals
    control("-d", server.process.pid)
    connection.close()
    for _ in range(50):
        dumps = sorted(set(out.parent.glob(out.name + ".*")) - before)
        if dumps:
            return total(dumps[-1]) / requests
        time.sleep(0.2)
    rest.fail(f"callgrind wrote no dump for {server.name}")


def projection_child(entries: int) -> None:
    """Index ``entries`` journal entries of 50 member-read records each (after 10 to warm up), then exit."""
    from fhir_server.formats import json as fjson
    from fhir_server.repository import new_id
    from fhir_server.security.audit import index_next
    from fhir_server.store import open_store

    directory = tempfile.mkdtemp(prefix="fhir-projection-")
    store = open_store(f"sqlite:///{directory}/fhir.sqlite", background=True)

    def record(n: int) -> dict:
        return {"method": "GET", "path": f"/ServiceRequest/sr-{n}", "address": "127.0.0.1", "status": 200,
                "interaction": "read", "resource_type": "ServiceRequest", "id": f"sr-{n}",
                "client_id": "bench-member", "organization": auth.BENCH_ORG, "practitioner_role": None,
                "at": time.time_ns()}

    journal = [fjson.dumps({"id": new_id(), "records": [record(e * 50 + n) for n in range(50)]})
               for e in range(10 + entries)]
    with store.session(write=True) as session:
        session.append_audit_records(journal)
    for _ in range(10 + entries):
        if not index_next(store):
            raise SystemExit("the journal ran dry")
    os._exit(0)  # skip the interpreter's teardown: only the indexing differs between the two runs


def projection(tmp: Path) -> float:
    """Instructions per AuditEvent of the projection: two child runs, 5 and 25 entries of 50 records."""
    totals = []
    for entries in (5, 25):
        out = tmp / f"projection-{entries}.out"
        done = subprocess.run([*callgrind(out), sys.executable, __file__, "--projection-child", str(entries)],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            rest.fail(f"the projection run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        totals.append(total(out))
    return (totals[1] - totals[0]) / (20 * 50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="counted requests per scenario and server")
    parser.add_argument("--no-projection", action="store_true", help="skip the AuditEvent projection count")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--projection-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.projection_child is not None:
        projection_child(args.projection_child)
        return 0
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            rest.fail(f"{tool} is not installed; apt-get update && apt-get install -y valgrind")

    with tempfile.TemporaryDirectory(prefix="fhir-instructions-") as tmp:
        tmp_path = Path(tmp)
        clients_file, keys = auth.make_clients(tmp_path)
        envs = dict(zip(("open", "auth"), auth.server_envs(tmp_path, clients_file)))
        outs = {name: tmp_path / f"{name}.callgrind" for name in envs}
        servers = {}
        try:
            for name, env in envs.items():  # both start at once: ~1 min each under callgrind
                servers[name] = rest.Server(name, "fhir_server.app:serve_app", env, None, ["--factory"],
                                            tmp_path / f"{name}.log", wrapper=callgrind(outs[name]))
            for server in servers.values():
                server.wait_ready(timeout=600)
            member = auth.access_token(servers["auth"], "bench-member", keys["bench-member"])
            admin = {"Authorization": f"Bearer {auth.access_token(servers['auth'], 'bench-admin', keys['bench-admin'])}"}
            read_paths = {"open": auth.prepare(servers["open"], {}), "auth": auth.prepare(servers["auth"], admin)}
            body = (rest.DATA / "servicerequest.json").read_bytes()
            tokens = {"open": None, "auth": member}
            figures: dict[str, dict[str, float]] = {}
            for scenario, method, expect in (("read", "GET", 200), ("create", "POST", 201)):
                figures[scenario] = {}
                for name, server in servers.items():
                    path = read_paths[name] if scenario == "read" else "/ServiceRequest"
                    figures[scenario][name] = count(server, outs[name], method, path,
                                                    None if scenario == "read" else body, tokens[name],
                                                    args.requests, expect)
        finally:
            for server in servers.values():
                server.stop()
        per_event = None if args.no_projection else projection(tmp_path)

    print(f"\nInstructions per request, server process (callgrind), {args.requests} requests each, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'scenario':<10}{'open':>12}{'auth+audit':>14}{'open/auth':>11}   target ≥ {auth.TARGET:.0%}")
    for scenario, by in figures.items():
        ratio = by["open"] / by["auth"]
        print(f"{scenario:<10}{by['open'] / 1000:>11.1f}k{by['auth'] / 1000:>13.1f}k{ratio:>10.1%}"
              f"   {'met' if ratio >= auth.TARGET else 'missed'}")
    if per_event is not None:
        print(f"AuditEvent projection (the indexer process, beside the server): {per_event / 1000:.1f}k per AuditEvent")
    if args.json:
        args.json.write_text(json.dumps({"requests": args.requests, "instructions": figures,
                                         "projection_per_audit_event": per_event}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
