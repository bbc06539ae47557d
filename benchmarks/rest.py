"""Load benchmark of the REST API against a bare FastAPI app returning the same bytes.

Starts two real HTTP server processes on 127.0.0.1 — the FHIR server (uvicorn running
``fhir_server.app:serve_app`` on a fresh SQLite data directory in a temporary directory,
or on ``$FHIR_STORE`` when set) and ``raw_app.py`` (the ceiling) — and drives both with
``wrk`` using identical settings: create (POST ServiceRequest), read-by-id (GET
ServiceRequest/id) and a 10-entry transaction Bundle. Prints throughput, p50/p99 latency
and the real/raw ratios beside the targets.

    python benchmarks/rest.py            # ~80 s: 3 scenarios x 2 servers x (2 s warm-up + 10 s)
    python benchmarks/rest.py --duration 5 --json results.json --check

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install -y wrk``). On a machine with at least two
CPUs the servers are pinned to CPU 0 and wrk to CPU 1 (``taskset``), so the load generator
does not steal the server's core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SCRIPT = HERE / "wrk" / "scenario.lua"
JSON = "application/fhir+json"

#: scenario → minimum real/raw throughput ratio (None: reported, no target)
TARGETS = {"read": 0.50, "create": 0.15, "transaction": None}
#: headers the raw app copies from the real server's answer
_COPIED_HEADERS = ("content-type", "etag", "last-modified", "location")


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    #: CPU time the server process spent per request (user + system): robust against other load on the machine
    cpu_us: float = 0.0
    #: CPU the server spent after the run on work the run left for later (the audit journal's indexing)
    index_us: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def fail(message: str) -> "NoReturn":  # noqa: F821
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 30):
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Accept": JSON, "Content-Type": JSON, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc; 0 elsewhere or once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A uvicorn process we started, stopped by its own pid."""

    def __init__(self, name: str, app: str, env: dict, cpu: str | None, extra: list[str], log: Path,
                 wrapper: tuple[str, ...] = ()):
        """``wrapper``: a command the server runs under (``valgrind --tool=callgrind …``)."""
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [*wrapper, sys.executable, "-m", "uvicorn", app, *extra, "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
        if cpu is not None:
            command = ["taskset", "-c", cpu, *command]
        self.log = log
        self.process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log.open("wb"),
                                        stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                fail(f"the {self.name} server exited at start-up:\n{self.log.read_text()[-3000:]}")
            try:
                status, _, _ = http("GET", f"{self.url}/metadata")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        fail(f"the {self.name} server did not answer within {timeout:.0f} s")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux /proc; 0 elsewhere)."""
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def capture(real: Server, raw_dir: Path) -> dict[str, str]:
    """Seed the real server, record its answers for the raw app, and return each scenario's path."""
    for resource_type, id in (("Patient", "bench-patient"), ("Practitioner", "bench-practitioner"),
                              ("Organization", "bench-hospital")):
        body = {"resourceType": resource_type, "id": id}
        status, _, text = http("PUT", f"{real.url}/{resource_type}/{id}", json.dumps(body).encode())
        if status not in (200, 201):
            fail(f"seeding {resource_type}/{id} failed with {status}: {text[:500]!r}")
    responses = {}

    def record(name: str, method: str, path: str, body: bytes | None, expect: int) -> dict:
        status, headers, answer = http(method, real.url + path, body)
        if status != expect:
            fail(f"{name}: {method} {path} answered {status}, expected {expect}: {answer[:500]!r}")
        (raw_dir / f"{name}.body").write_bytes(answer)
        kept = {k: v for k, v in headers.items() if k.lower() in _COPIED_HEADERS}
        responses[name] = {"status": status, "headers": kept, "body": f"{name}.body"}
        return json.loads(answer)

    created = record("create", "POST", "/ServiceRequest", (DATA / "servicerequest.json").read_bytes(), 201)
    read_path = f"/ServiceRequest/{created['id']}"
    record("read", "GET", read_path, None, 200)
    answer = record("transaction", "POST", "/", (DATA / "transaction.json").read_bytes(), 200)
    if answer.get("type") != "transaction-response" or len(answer.get("entry", [])) != 10:
        fail("the transaction did not answer with a 10-entry transaction-response")
    (raw_dir / "responses.json").write_text(json.dumps(responses, indent=2))
    return {"read": read_path, "create": "/ServiceRequest", "transaction": "/"}


def run_wrk(server: Server, url: str, method: str, body: Path | None, seconds: float, args: argparse.Namespace,
            cpu: str | None) -> Result:
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds:g}s",
               "--timeout", "10s", "-s", str(SCRIPT), url, "--", method, str(body) if body else ""]
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]
    cpu_before = server.cpu_seconds()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu_used = server.cpu_seconds() - cpu_before
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        fail(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line[len("BENCH "):])
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return Result(data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p99_us"] / 1000,
                  errors, cpu_used / data["requests"] * 1e6 if data["requests"] else 0.0)


def paired_ratios(baseline: list[Result], measured: list[Result]) -> list[float]:
    """The ratio of each round's two runs, made back to back: how steady the best-of ratio is."""
    return [m.rps / b.rps if b.rps else 0.0 for b, m in zip(baseline, measured)]


def describe_rounds(ratios: list[float], target: float | None) -> str:
    """``15 %, 16 %, 14 % (median 15 %, lowest 14 %, 1 of 3 below the 15 % target)``: the median of many short
    paired rounds is the figure a noisy machine moves least."""
    text = ", ".join(f"{r:.1%}" for r in ratios) + f" (median {statistics.median(ratios):.1%}, lowest {min(ratios):.1%}"
    if target is not None:
        below = sum(r < target for r in ratios)
        text += f", {below} of {len(ratios)} below the {target:.0%} target"
    return text + ")"


def sample(server: Server, output: Path, seconds: float) -> subprocess.Popen:
    """Sample the FHIR server's stacks with py-spy during a run (collapsed stacks, one line per stack)."""
    if shutil.which("py-spy") is None:
        fail("--py-spy needs py-spy: pip install py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(["py-spy", "record", "--pid", str(server.process.pid), "--duration", f"{seconds:.0f}",
                             "--rate", "250", "--format", "raw", "--nonblocking", "--output", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per scenario and server")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load before the first run")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=1, help="alternating raw/FHIR runs per scenario; best kept")
    parser.add_argument("--scenarios", default="read,create,transaction")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to separate CPUs")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="sample the FHIR server with py-spy during each measured run into DIR/<scenario>.txt")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target ratio is missed")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 120 or not 1 <= args.rounds <= 10:
        fail("--duration must be between 0 and 120 seconds and --rounds between 1 and 10")

    if shutil.which("wrk") is None:
        fail("the load generator 'wrk' is not installed; on Debian/Ubuntu: apt-get update && apt-get install -y wrk")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    server_cpu, load_cpu = ("0", "1") if pin else (None, None)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(TARGETS)
    if unknown:
        fail(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    # taken before our own processes add theirs: how busy the machine was already
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    with tempfile.TemporaryDirectory(prefix="fhir-bench-") as tmp:
        tmp_path = Path(tmp)
        raw_dir = tmp_path / "raw"
        raw_dir.mkdir()
        env = {"FHIR_DATA_DIR": str(tmp_path / "data")}
        real = Server("FHIR", "fhir_server.app:serve_app", env, server_cpu, ["--factory"], tmp_path / "real.log")
        servers = [real]
        try:
            real.wait_ready()
            paths = capture(real, raw_dir)
            raw = Server("raw", "raw_app:app", {"BENCH_RAW_DIR": str(raw_dir)}, server_cpu,
                         ["--app-dir", str(HERE)], tmp_path / "raw.log")
            servers.append(raw)
            raw.wait_ready()
            bodies = {"read": None, "create": DATA / "servicerequest.json", "transaction": DATA / "transaction.json"}
            methods = {"read": "GET", "create": "POST", "transaction": "POST"}
            results: dict[str, dict[str, Result]] = {}
            rounds: dict[str, list[float]] = {}
            for name in scenarios:
                runs: dict[str, list[Result]] = {"raw": [], "FHIR": []}
                for round_ in range(args.rounds):
                    for server in (raw, real):  # alternated, so slow phases of the machine hit both
                        url = server.url + paths[name]
                        if args.warmup > 0 and round_ == 0:
                            run_wrk(server, url, methods[name], bodies[name], args.warmup, args, load_cpu)
                        sampler = None
                        if args.py_spy and server is real:
                            sampler = sample(real, args.py_spy / f"{name}.txt", args.duration)
                        result = run_wrk(server, url, methods[name], bodies[name], args.duration, args, load_cpu)
                        if sampler is not None:
                            sampler.wait(timeout=60)
                        if result.errors:
                            fail(f"{name} on the {server.name} server: {result.errors} failed requests "
                                 f"(see {server.log}); the results would not be comparable")
                        runs[server.name].append(result)
                        print(f"  {name:<12} {server.name:<5} {result.rps:7.0f} req/s  p50 {result.p50_ms:6.2f} ms"
                              f"  p99 {result.p99_ms:7.2f} ms  server CPU {result.cpu_us:6.0f} µs/req",
                              file=sys.stderr)
                # the fastest round of each: other load on the machine only ever slows a run down
                results[name] = {k: max(v, key=lambda r: r.rps) for k, v in runs.items()}
                rounds[name] = paired_ratios(runs["raw"], runs["FHIR"])
        finally:
            for server in reversed(servers):
                server.stop()

    store = os.environ.get("FHIR_STORE") or "sqlite (fresh data dir)"
    print(f"\nFHIR REST load benchmark — Python {platform.python_version()}, {os.cpu_count()} CPUs, store: "
          f"{store.split('@')[-1]}, wrk -t{args.threads} -c{args.connections}, {args.duration:g} s per run, "
          f"best of {args.rounds}{', server on CPU 0 / wrk on CPU 1' if pin else ''}, load average before the run "
          f"{load:.1f}\n")
    print("| scenario | raw req/s | raw p50 / p99 ms | FHIR req/s | FHIR p50 / p99 ms | FHIR/raw | target "
          "| server CPU µs/req raw / FHIR | CPU ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    missed = []
    report = {}
    for name, pair in results.items():
        raw_r, real_r = pair["raw"], pair["FHIR"]
        ratio = real_r.rps / raw_r.rps if raw_r.rps else 0.0
        cpu_ratio = raw_r.cpu_us / real_r.cpu_us if real_r.cpu_us else 0.0
        target = TARGETS[name]
        verdict = "—" if target is None else f"≥ {target:.0%} {'met' if ratio >= target else 'MISSED'}"
        if target is not None and ratio < target:
            missed.append(name)
        print(f"| {name} | {raw_r.rps:.0f} | {raw_r.p50_ms:.2f} / {raw_r.p99_ms:.2f} | {real_r.rps:.0f} "
              f"| {real_r.p50_ms:.2f} / {real_r.p99_ms:.2f} | {ratio:.0%} | {verdict} "
              f"| {raw_r.cpu_us:.0f} / {real_r.cpu_us:.0f} | {cpu_ratio:.0%} |")
        report[name] = {"raw": vars(raw_r) | {"rps": raw_r.rps}, "fhir": vars(real_r) | {"rps": real_r.rps},
                        "ratio": ratio, "cpu_ratio": cpu_ratio, "target": target, "round_ratios": rounds[name]}
    if args.rounds > 1:
        print()
        for name, ratios in rounds.items():
            print(f"{name}: FHIR/raw round by round {describe_rounds(ratios, TARGETS[name])}")
    if "transaction" in results:
        tx = results["transaction"]["FHIR"]
        print(f"\ntransaction: {tx.rps * 10:.0f} resources/s written in 10-entry Bundles")
    if load > 1.0:
        print(f"\nwarning: the machine was busy (load average {load:.1f}): other processes took CPU from both "
              "servers, so req/s are low and their ratio is unreliable; the CPU ratio (server CPU per request, "
              "raw / FHIR) is the steadier measure of the FHIR server's cost")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}")
        return 1 if args.check else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
