"""Throughput with SMART authentication, the access policy and the audit trail on, beside auth off.

Starts two real FHIR servers on 127.0.0.1 from the same code — one open (no auth, no audit), one
with ``FHIR_AUTH=1`` (bearer verification, scopes, consortium access policy, an AuditEvent written
per request by the background writer) — and drives both with ``wrk`` in the same run, alternating,
on read-by-id and create of a ServiceRequest. The client is a consortium member (not an
administrator), so every read runs the policy's visibility query and every create its party check.
Prints req/s, latency, server CPU per request and the auth/open ratio beside the target (≥ 80 %:
authentication and audit cost under 20 % of throughput), then checks the audit trail kept up.

The audit trail journals each request at once; the journal becomes AuditEvents in the indexer
process the server starts beside itself (``--indexer process``, the default on a host with more than
one CPU), which this benchmark leaves free to run on any CPU while the server stays on CPU 0, or with
``--indexer thread`` in the server's own audit thread. Either indexes while the server is quiet,
when an administrator reads AuditEvents, or once more than ~20,000 records wait: a run that serves
more requests than that pays the indexing as it goes, as a server saturated for good does (the
default 10 s runs of reads), and a shorter one measures a burst, indexed after it (``--duration 2``).
After every run on the auth server an administrator's AuditEvent search indexes what is left — so no
run shares the CPU with another run's indexing — and the CPU all indexing took (the indexer process's
during the run, and the servers' and the indexer's after it) is printed per request, with the CPU
ratio counting it (what a single core would give).

    python benchmarks/auth.py                 # ~60 s
    python benchmarks/auth.py --duration 5 --rounds 2 --json auth.json --check

Needs ``wrk`` (``apt-get install -y wrk``); reuses the server/wrk plumbing of ``benchmarks/rest.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import rest  # noqa: E402  (benchmarks/rest.py: Server, http, fail, Result)

TARGET = 0.80
SCENARIOS = ("read", "create")
BENCH_ORG = "Organization/bench-hospital"  # the performer named in data/servicerequest.json


def make_clients(directory: Path) -> tuple[Path, dict]:
    """A clients file with a member client and an administrator, keys made here; returns their private keys."""
    from joserfc.jwk import ECKey

    from fhir_server.security.clients import client_from_json, write_clients

    keys, clients = {}, {}
    for client_id, admin in (("bench-member", False), ("bench-admin", True)):
        key = ECKey.generate_key("P-384", private=True, auto_kid=True)
        keys[client_id] = key
        clients[client_id] = client_from_json({"client_id": client_id, "organization": BENCH_ORG, "admin": admin,
                                               "scopes": ["system/*.cruds"],
                                               "jwks": {"keys": [key.as_dict(private=False)]}})
    path = directory / "clients.json"
    write_clients(path, clients)
    return path, keys


def server_envs(directory: Path, clients_file: Path, audit: bool = True, indexer: str = "process") -> tuple:
    """The environments of the two servers: open (no auth, no audit), and auth with the policy and, unless
    ``audit`` is False, the audit trail indexed by ``indexer``."""
    open_env = {"FHIR_DATA_DIR": str(directory / "open"), "FHIR_AUTH": "", "FHIR_AUDIT": ""}
    auth_env = {"FHIR_DATA_DIR": str(directory / "auth"), "FHIR_AUTH": "1", "FHIR_AUTH_CLIENTS": str(clients_file),
                "FHIR_AUTH_TOKEN_SECRET": uuid.uuid4().hex * 2, "FHIR_AUDIT": "" if audit else "0",
                "FHIR_AUDIT_INDEXER": indexer}
    return open_env, auth_env


def token_form(client_id: str, key, token_url: str) -> dict:
    """A SMART backend-services token request with a freshly signed client assertion."""
    from joserfc import jwt

    from fhir_server.security.tokens import ASSERTION_TYPE

    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": int(time.time()) + 240,
              "jti": uuid.uuid4().hex}
    assertion = jwt.encode({"alg": "ES384", "kid": key.kid}, claims, key, algorithms=["ES384"])
    return {"grant_type": "client_credentials", "scope": "system/*.cruds", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion}


def access_token(server: "rest.Server", client_id: str, key) -> str:
    from urllib.parse import urlencode

    form = urlencode(token_form(client_id, key, f"{server.url}/auth/token")).encode()
    status, _, body = rest.http("POST", f"{server.url}/auth/token", form,
                                {"Content-Type": "application/x-www-form-urlencoded"})
    if status != 200:
        rest.fail(f"token request failed with {status}: {body[:300]!r}")
    return json.loads(body)["access_token"]


def prepare(server: "rest.Server", headers: dict) -> str:
    """Seed the referenced resources and one ServiceRequest; return the read path."""
    for resource_type, id in (("Patient", "bench-patient"), ("Practitioner", "bench-practitioner"),
                              ("Organization", "bench-hospital")):
        body = json.dumps({"resourceType": resource_type, "id": id}).encode()
        status, _, text = rest.http("PUT", f"{server.url}/{resource_type}/{id}", body, headers)
        if status not in (200, 201):
            rest.fail(f"seeding {resource_type}/{id} on {server.name} failed with {status}: {text[:300]!r}")
    status, _, text = rest.http("POST", f"{server.url}/ServiceRequest",
                                (rest.DATA / "servicerequest.json").read_bytes(), headers)
    if status != 201:
        rest.fail(f"creating the ServiceRequest on {server.name} failed with {status}: {text[:300]!r}")
    return f"/ServiceRequest/{json.loads(text)['id']}"


def run_wrk(server: "rest.Server", url: str, method: str, body: Path | None, seconds: float, args, cpu,
            token: str | None) -> "rest.Result":
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds:g}s",
               "--timeout", "10s", "-s", str(rest.SCRIPT)]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    command += [url, "--", method, str(body) if body else ""]
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]
    cpu_before, indexer_before = server.cpu_seconds(), children_cpu_seconds(server)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu_used = server.cpu_seconds() - cpu_before
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        rest.fail(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line[len("BENCH "):])
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    result = rest.Result(data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p99_us"] / 1000,
                         errors, cpu_used / data["requests"] * 1e6 if data["requests"] else 0.0)
    result.index_us = (children_cpu_seconds(server) - indexer_before) / max(1, data["requests"]) * 1e6
    return result


def children(server: "rest.Server") -> list[int]:
    """Pids of the server's child processes (the audit indexer), from Linux /proc."""
    pids = []
    for task in Path(f"/proc/{server.process.pid}/task").glob("*"):
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def children_cpu_seconds(server: "rest.Server") -> float:
    return sum(rest.process_cpu_seconds(pid) for pid in children(server))


def audit_count(server: "rest.Server", headers: dict) -> int:
    """AuditEvents stored; an administrator's AuditEvent search first indexes the whole audit journal."""
    status, _, body = rest.http("GET", f"{server.url}/AuditEvent?_summary=count", None, headers, timeout=600)
    return json.loads(body).get("total", -1) if status == 200 else -1


def settle_audit(server: "rest.Server", headers: dict) -> float:
    """Index what the last run journaled, so that no run shares the CPU with another's indexing;
    returns the CPU seconds the server and its indexer took for it (the audit trail's deferred cost)."""
    before = server.cpu_seconds() + children_cpu_seconds(server)
    audit_count(server, headers)
    return server.cpu_seconds() + children_cpu_seconds(server) - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per scenario and server")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="alternating open/auth runs per scenario; best kept")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--no-audit", action="store_true", help="auth and policy only (FHIR_AUDIT=0): the audit's share")
    parser.add_argument("--indexer", choices=("process", "thread"), default="process",
                        help="where the auth server indexes AuditEvents (FHIR_AUDIT_INDEXER)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="sample both servers with py-spy during each measured run into DIR/<scenario>-<server>.txt")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target ratio is missed")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        rest.fail("the load generator 'wrk' is not installed; apt-get update && apt-get install -y wrk")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    server_cpu, load_cpu = ("0", "1") if pin else (None, None)

    with tempfile.TemporaryDirectory(prefix="fhir-auth-bench-") as tmp:
        tmp_path = Path(tmp)
        clients_file, keys = make_clients(tmp_path)
        open_env, auth_env = server_envs(tmp_path, clients_file, not args.no_audit, args.indexer)
        servers = []
        try:
            opened = rest.Server("open", "fhir_server.app:serve_app", open_env, server_cpu, ["--factory"],
                                 tmp_path / "open.log")
            servers.append(opened)
            secured = rest.Server("auth", "fhir_server.app:serve_app", auth_env, server_cpu, ["--factory"],
                                  tmp_path / "auth.log")
            servers.append(secured)
            opened.wait_ready()
            secured.wait_ready()
            if pin:  # the indexer inherited the server's CPU: let it run wherever there is room
                for pid in children(secured):
                    os.sched_setaffinity(pid, range(os.cpu_count() or 1))
            member = access_token(secured, "bench-member", keys["bench-member"])
            admin = {"Authorization": f"Bearer {access_token(secured, 'bench-admin', keys['bench-admin'])}"}
            paths = {"open": {"read": prepare(opened, {}), "create": "/ServiceRequest"},
                     "auth": {"read": prepare(secured, admin), "create": "/ServiceRequest"}}
            status, _, _ = rest.http("GET", secured.url + paths["auth"]["read"], None,
                                     {"Authorization": f"Bearer {member}"})
            if status != 200:
                rest.fail(f"the member cannot read its ServiceRequest ({status})")
            tokens = {"open": None, "auth": member}
            bodies = {"read": None, "create": rest.DATA / "servicerequest.json"}
            methods = {"read": "GET", "create": "POST"}
            results: dict[str, dict[str, rest.Result]] = {}
            rounds: dict[str, list[float]] = {}
            audited_before = audit_count(secured, admin)
            requests_on_auth = 0
            for name in SCENARIOS:
                runs: dict[str, list] = {"open": [], "auth": []}
                for round_ in range(args.rounds):
                    for server in (opened, secured):
                        url = server.url + paths[server.name][name]
                        if args.warmup > 0 and round_ == 0:
                            warm = run_wrk(server, url, methods[name], bodies[name], args.warmup, args, load_cpu,
                                           tokens[server.name])
                            if server is secured:
                                requests_on_auth += warm.requests
                                if not args.no_audit:
                                    settle_audit(secured, admin)
                        sampler = None
                        if args.py_spy:
                            sampler = rest.sample(server, args.py_spy / f"{name}-{server.name}.txt", args.duration)
                        result = run_wrk(server, url, methods[name], bodies[name], args.duration, args, load_cpu,
                                         tokens[server.name])
                        if sampler is not None:
                            sampler.wait(timeout=60)
                        if server is secured and not args.no_audit:
                            result.index_us += settle_audit(secured, admin) / result.requests * 1e6
                        if result.errors:
                            rest.fail(f"{name} on the {server.name} server: {result.errors} failed requests "
                                      f"(see {server.log})")
                        requests_on_auth += result.requests if server is secured else 0
                        runs[server.name].append(result)
                        print(f"  {name:<7} {server.name:<5} {result.rps:7.0f} req/s  p50 {result.p50_ms:6.2f} ms"
                              f"  p99 {result.p99_ms:7.2f} ms  server CPU {result.cpu_us:6.0f} µs/req",
                              file=sys.stderr)
                results[name] = {k: max(v, key=lambda r: r.rps) for k, v in runs.items()}
                rounds[name] = rest.paired_ratios(runs["open"], runs["auth"])
            deadline = time.monotonic() + 60
            audited = audit_count(secured, admin) - audited_before
            while not args.no_audit and audited < requests_on_auth and time.monotonic() < deadline:
                time.sleep(1)
                audited = audit_count(secured, admin) - audited_before
        finally:
            for server in reversed(servers):
                server.stop()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    indexer = ("an indexer process" + (" on any CPU" if pin else "")) if args.indexer == "process" \
        else "the server's audit thread"
    print(f"\nAuth + audit benchmark — Python {platform.python_version()}, {os.cpu_count()} CPUs, SQLite, "
          f"wrk -t{args.threads} -c{args.connections}, {args.duration:g} s per run, best of {args.rounds}"
          f"{', server on CPU 0 / wrk on CPU 1' if pin else ''}"
          f"{'' if args.no_audit else ', AuditEvents indexed by ' + indexer}"
          f", load average {load:.1f}\n")
    label = "auth (no audit)" if args.no_audit else "auth+audit"
    indexing = "" if args.no_audit else " audit indexing CPU µs/req | CPU ratio with it |"
    print(f"| scenario | open req/s | open p50 / p99 ms | {label} req/s | auth p50 / p99 ms | auth/open | target "
          f"| server CPU µs/req open / auth |{indexing}")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |" + ("" if args.no_audit else " ---: | ---: |"))
    missed, report = [], {}
    for name, pair in results.items():
        o, a = pair["open"], pair["auth"]
        ratio = a.rps / o.rps if o.rps else 0.0
        if ratio < TARGET:
            missed.append(name)
        print(f"| {name} | {o.rps:.0f} | {o.p50_ms:.2f} / {o.p99_ms:.2f} | {a.rps:.0f} | {a.p50_ms:.2f} / "
              f"{a.p99_ms:.2f} | {ratio:.0%} | ≥ {TARGET:.0%} {'met' if ratio >= TARGET else 'MISSED'} "
              f"| {o.cpu_us:.0f} / {a.cpu_us:.0f} |"
              + ("" if args.no_audit else f" {a.index_us:.0f} | {o.cpu_us / (a.cpu_us + a.index_us):.0%} |"))
        report[name] = {"open": vars(o) | {"rps": o.rps}, "auth": vars(a) | {"rps": a.rps}, "ratio": ratio,
                        "round_ratios": rounds[name]}
    if args.rounds > 1:
        print()
        for name, ratios in rounds.items():
            print(f"{name}: auth/open round by round {rest.describe_rounds(ratios, TARGET)}")
    if not args.no_audit:
        print(f"\naudit trail: {audited} AuditEvents stored for {requests_on_auth} measured requests "
              f"({'complete' if audited >= requests_on_auth else 'INCOMPLETE'} within 60 s after the load)")
        report["audit"] = {"requests": requests_on_auth, "audit_events": audited}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if missed:
        print(f"\ntarget missed: {', '.join(missed)}")
        return 1 if args.check else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
