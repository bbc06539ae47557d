"""Search latency at concurrency 8 over HTTP on 100,000 generated referral resources.

Generates Organizations, Practitioners, PractitionerRoles, Patients (with national IDs),
ServiceRequests, Tasks and Encounters (deterministic, seeded), loads them straight through
the Store protocol (bulk, for speed), starts a real ``fhir-server serve`` process (uvicorn)
on the database and fires four query kinds with 8 concurrent clients (httpx):

- token:      ``Task?owner=Organization/X&status=requested,received``
- date range: ``ServiceRequest?authored=ge…&authored=lt…`` (one day)
- chained:    ``ServiceRequest?subject:Patient.identifier=<national id system>|<id>``
- include:    ``ServiceRequest?subject=Patient/X&_include=ServiceRequest:subject&_revinclude=Task:focus``

Every response is checked against the generated data (total and ids). Prints p50/p99 per
query kind; target on the reference machine: p50 < 20 ms and p99 < 100 ms for each.

    python benchmarks/search.py                      # 100,000 resources, 400 requests per kind
    python benchmarks/search.py --resources 20000 --requests 100
    FHIR_STORE=mongodb://db1/bench python benchmarks/search.py   # on MongoDB (an empty database)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_server.formats import json as fjson  # noqa: E402
from fhir_server.store.base import StoredResource  # noqa: E402
from fhir_server.store import open_store  # noqa: E402
from fhir_server.store.sqlite import SQLiteStore  # noqa: E402

NATIONAL_ID = "https://fhir.referral.cn/ig/NamingSystem/resident-id"
KINDS = ("token", "date range", "chained", "include")
STATUSES = ["draft", "requested", "received", "accepted", "rejected", "in-progress", "completed", "cancelled"]
LAST_UPDATED = "2025-01-01T00:00:00.000000Z"


class Dataset:
    """Generated resources plus the facts needed to check answers."""

    def __init__(self, total: int, seed: int = 7):
        rnd = random.Random(seed)
        share = total / 100_000
        self.n_org = max(10, int(200 * share))
        self.n_prac = max(10, int(1000 * share))
        self.n_pat = max(10, int(28_000 * share))
        self.n_sr = max(10, int(28_000 * share))
        self.n_task = max(10, int(28_000 * share))
        self.n_enc = max(10, total - self.n_org - 2 * self.n_prac - self.n_pat - self.n_sr - self.n_task)
        self.open_tasks_by_owner: dict[str, set[str]] = defaultdict(set)
        self.srs_by_day: dict[str, set[str]] = defaultdict(set)
        self.srs_by_patient: dict[str, set[str]] = defaultdict(set)
        self.tasks_by_sr: dict[str, set[str]] = defaultdict(set)
        self.national_id: dict[str, str] = {}
        self.rnd = rnd

    def resources(self):
        rnd = self.rnd
        for i in range(self.n_org):
            yield {"resourceType": "Organization", "id": f"org-{i}", "active": True, "name": f"医院 {i}",
                   "identifier": [{"system": "https://fhir.referral.cn/ig/NamingSystem/uscc", "value": f"USCC{i:08d}"}]}
        for i in range(self.n_prac):
            yield {"resourceType": "Practitioner", "id": f"prac-{i}", "name": [{"family": "王", "given": [f"医{i}"]}],
                   "identifier": [{"system": "https://fhir.referral.cn/ig/NamingSystem/licence", "value": f"L{i}"}]}
            yield {"resourceType": "PractitionerRole", "id": f"role-{i}",
                   "practitioner": {"reference": f"Practitioner/prac-{i}"},
                   "organization": {"reference": f"Organization/org-{i % self.n_org}"},
                   "code": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/practitioner-role",
                                         "code": "doctor"}]}]}
        for i in range(self.n_pat):
            nid = f"62010219{rnd.randint(50, 99)}{rnd.randint(1, 12):02d}{rnd.randint(1, 28):02d}{i:04d}"[:18]
            self.national_id[f"pat-{i}"] = nid
            yield {"resourceType": "Patient", "id": f"pat-{i}", "gender": rnd.choice(["male", "female"]),
                   "birthDate": f"19{rnd.randint(30, 99)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
                   "identifier": [{"system": NATIONAL_ID, "value": nid}],
                   "name": [{"family": rnd.choice("张王李赵刘陈杨黄"), "given": [f"患者{i}"]}],
                   "managingOrganization": {"reference": f"Organization/org-{rnd.randrange(self.n_org)}"}}
        start = date(2024, 1, 1)
        for i in range(self.n_sr):
            patient = f"pat-{rnd.randrange(self.n_pat)}"
            day = (start + timedelta(days=rnd.randrange(366))).isoformat()
            self.srs_by_day[day].add(f"sr-{i}")
            self.srs_by_patient[patient].add(f"sr-{i}")
            yield {"resourceType": "ServiceRequest", "id": f"sr-{i}", "status": rnd.choice(["active", "completed"]),
                   "intent": "order", "subject": {"reference": f"Patient/{patient}"},
                   "authoredOn": f"{day}T{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:00+08:00",
                   "requester": {"reference": f"PractitionerRole/role-{rnd.randrange(self.n_prac)}"},
                   "performer": [{"reference": f"Organization/org-{rnd.randrange(self.n_org)}"}],
                   "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005",
                                        "display": "Patient referral"}]},
                   "identifier": [{"system": "https://fhir.referral.cn/ig/NamingSystem/referral", "value": f"R{i}"}]}
        for i in range(self.n_task):
            sr = rnd.randrange(self.n_sr)
            owner = f"org-{rnd.randrange(self.n_org)}"
            status = rnd.choice(STATUSES)
            if status in ("requested", "received"):
                self.open_tasks_by_owner[owner].add(f"task-{i}")
            self.tasks_by_sr[f"sr-{sr}"].add(f"task-{i}")
            yield {"resourceType": "Task", "id": f"task-{i}", "status": status, "intent": "order",
                   "focus": {"reference": f"ServiceRequest/sr-{sr}"},
                   "owner": {"reference": f"Organization/{owner}"},
                   "authoredOn": f"2024-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T08:00:00Z"}
        for i in range(self.n_enc):
            yield {"resourceType": "Encounter", "id": f"enc-{i}", "status": "finished",
                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                   "subject": {"reference": f"Patient/pat-{rnd.randrange(self.n_pat)}"},
                   "basedOn": [{"reference": f"ServiceRequest/sr-{rnd.randrange(self.n_sr)}"}],
                   "period": {"start": "2024-05-01T08:00:00+08:00", "end": "2024-05-01T09:00:00+08:00"}}


def load(url: str, dataset: Dataset) -> tuple[int, float]:
    store = open_store(url)
    # a standalone MongoDB server (no transactions) takes one write per session
    per_session = 1 if getattr(store, "mode", "") == "single" else 2000
    count, started = 0, time.perf_counter()
    batch: list[dict] = []

    def flush():
        with store.session(write=True) as session:
            for resource in batch:
                resource["meta"] = {"versionId": "1", "lastUpdated": LAST_UPDATED}
                record = StoredResource(resource["resourceType"], resource["id"], 1, LAST_UPDATED, False,
                                        fjson.dumps(resource), "POST")
                session.write(record, resource, 0)
        batch.clear()

    for resource in dataset.resources():
        batch.append(resource)
        count += 1
        if len(batch) >= per_session:
            flush()
    flush()
    if isinstance(store, SQLiteStore):
        store._connection().execute("ANALYZE")
    store.close()
    return count, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_cpus() -> bool:
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2 and bool(shutil.which("taskset"))


def start_server(url: str, port: int) -> subprocess.Popen:
    """``fhir-server serve`` on the database; on two or more CPUs pinned to CPU 0 (the client takes CPU 1)."""
    env = {**os.environ, "FHIR_BASE_URL": f"http://127.0.0.1:{port}"}
    pin = ["taskset", "-c", "0"] if _two_cpus() else []
    proc = subprocess.Popen(
        [*pin, sys.executable, "-m", "fhir_server.cli", "serve", "--store", url, "--port", str(port),
         "--no-access-log", "--log-level", "warning"], env=env, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/metadata", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
    proc.terminate()
    raise SystemExit("the server did not start")


def _ids(bundle: dict, mode: str) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode}


def make_queries(dataset: Dataset, n: int, seed: int = 11):
    """(kind, url, check) triples; ``check(bundle)`` returns an error text or None."""
    rnd = random.Random(seed)
    queries = []
    for _ in range(n):
        owner = f"org-{rnd.randrange(dataset.n_org)}"
        expected = dataset.open_tasks_by_owner[owner]

        def check_token(bundle, expected=expected):
            if bundle.get("total") != len(expected) or not _ids(bundle, "match") <= expected:
                return f"token: total {bundle.get('total')} != {len(expected)}"
            return None

        queries.append(("token", f"/Task?owner=Organization/{owner}&status=requested,received", check_token))

        day = date(2024, 1, 1) + timedelta(days=rnd.randrange(1, 365))
        # authoredOn carries +08:00, so a UTC day range holds the referrals of local days day and day+1 in part;
        # query local-time bounds to compare with the generated local days exactly
        expected_day = dataset.srs_by_day[day.isoformat()]

        def check_date(bundle, expected=expected_day):
            if bundle.get("total") != len(expected) or not _ids(bundle, "match") <= expected:
                return f"date: total {bundle.get('total')} != {len(expected)}"
            return None

        queries.append(("date range", f"/ServiceRequest?authored=ge{day}T00:00:00%2B08:00"
                                      f"&authored=lt{day + timedelta(days=1)}T00:00:00%2B08:00", check_date))

        patient = f"pat-{rnd.randrange(dataset.n_pat)}"
        expected_srs = dataset.srs_by_patient[patient]

        def check_chain(bundle, expected=expected_srs):
            if _ids(bundle, "match") != expected or bundle.get("total") != len(expected):
                return f"chain: {sorted(_ids(bundle, 'match'))} != {sorted(expected)}"
            return None

        queries.append(("chained", f"/ServiceRequest?subject:Patient.identifier={NATIONAL_ID}|"
                                   f"{dataset.national_id[patient]}", check_chain))

        patient = f"pat-{rnd.randrange(dataset.n_pat)}"
        srs = dataset.srs_by_patient[patient]
        tasks = set().union(*(dataset.tasks_by_sr[s] for s in srs)) if srs else set()

        def check_include(bundle, srs=srs, tasks=tasks, patient=patient):
            included = _ids(bundle, "include")
            want = tasks | ({patient} if srs else set())
            if _ids(bundle, "match") != srs or included != want:
                return f"include: {sorted(_ids(bundle, 'match'))}/{sorted(included)} != {sorted(srs)}/{sorted(want)}"
            return None

        queries.append(("include", f"/ServiceRequest?subject=Patient/{patient}&_include=ServiceRequest:subject"
                                   f"&_revinclude=Task:focus&_sort=-authored", check_include))
    return queries


async def run(base: str, queries, concurrency: int) -> tuple[dict[str, list[float]], list[str]]:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    pending = list(queries)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60,
                                 headers={"Accept": "application/fhir+json"}) as client:
        async def worker():
            while pending:
                kind, url, check = pending.pop()
                started = time.perf_counter()
                response = await client.get(url)
                elapsed = time.perf_counter() - started
                latencies[kind].append(elapsed * 1000)
                if response.status_code != 200:
                    errors.append(f"{kind}: HTTP {response.status_code} {response.text[:200]}")
                    continue
                problem = check(response.json())
                if problem:
                    errors.append(problem)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def run_wrk(base: str, queries, concurrency: int, seconds: float, workdir: Path) -> dict[str, tuple]:
    """Per kind: (requests, p50 ms, p99 ms, errors) measured by wrk cycling through that kind's URLs."""
    script = Path(__file__).resolve().parent / "wrk" / "urls.lua"
    pin = ["taskset", "-c", "1"] if _two_cpus() else []
    results = {}
    for kind in KINDS:
        paths = workdir / f"{kind.replace(' ', '-')}.txt"
        paths.write_text("\n".join(url for k, url, _ in queries if k == kind) + "\n")
        out = subprocess.run([*pin, "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, int(seconds))}s", "--latency", "-s", str(script),
                              base, "--", str(paths)], capture_output=True, text=True, check=True).stdout
        line = next(l for l in out.splitlines() if l.startswith("BENCH "))
        data = json.loads(line[len("BENCH "):])
        results[kind] = (data["requests"], data["p50_us"] / 1000, data["p99_us"] / 1000,
                         data["status_errors"] + data["timeouts"])
    return results


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400, help="requests per query kind")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the database directory")
    parser.add_argument("--store", default=None,
                        help="store URL to load and serve (default: $FHIR_STORE, else a fresh SQLite file);"
                             " use an empty MongoDB database, e.g. mongodb://host/bench")
    parser.add_argument("--wrk-seconds", type=int, default=10,
                        help="also measure each kind with wrk for this long (0: skip; needs wrk)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="fhir-search-bench-"))
    db = workdir / "fhir.db"
    dataset = Dataset(args.resources)
    url = args.store or os.environ.get("FHIR_STORE") or f"sqlite:///{db}"
    count, seconds = load(url, dataset)
    print(f"loaded {count} resources in {seconds:.1f} s ({count / seconds:.0f}/s) into {url.split('@')[-1]}")

    port = free_port()
    server = start_server(url, port)
    if _two_cpus():
        os.sched_setaffinity(0, {1})
    try:
        queries = make_queries(dataset, args.requests)
        warm = [q for i, q in enumerate(queries) if i % 20 == 0]
        asyncio.run(run(f"http://127.0.0.1:{port}", warm, args.concurrency))
        random.Random(3).shuffle(queries)
        started = time.perf_counter()
        latencies, errors = asyncio.run(run(f"http://127.0.0.1:{port}", queries, args.concurrency))
        wall = time.perf_counter() - started
        wrk_results = None
        if args.wrk_seconds and shutil.which("wrk"):
            wrk_results = run_wrk(f"http://127.0.0.1:{port}", queries, args.concurrency, args.wrk_seconds, workdir)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"{len(queries)} requests at concurrency {args.concurrency} in {wall:.1f} s "
          f"({len(queries) / wall:.0f} req/s)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("httpx client, every answer checked:")
    print("| query | requests | p50 ms | p99 ms | target p50<20 p99<100 |")
    print("| --- | --- | --- | --- | --- |")
    ok = True
    for kind in KINDS:
        values = latencies[kind]
        p50, p99 = percentile(values, 50), percentile(values, 99)
        met = p50 < 20 and p99 < 100
        ok = ok and met
        print(f"| {kind} | {len(values)} | {p50:.1f} | {p99:.1f} | {'met' if met else 'MISSED'} |")
    if wrk_results:
        print(f"wrk, {args.concurrency} connections, {args.wrk_seconds:g} s per query kind (same URLs):")
        print("| query | requests | p50 ms | p99 ms | non-2xx | target p50<20 p99<100 |")
        print("| --- | --- | --- | --- | --- | --- |")
        for kind, (count, p50, p99, bad) in wrk_results.items():
            met = p50 < 20 and p99 < 100 and not bad
            print(f"| {kind} | {count} | {p50:.1f} | {p99:.1f} | {bad} | {'met' if met else 'MISSED'} |")
    if errors:
        print(f"{len(errors)} wrong answers, e.g.:")
        for error in errors[:5]:
            print("  ", error)
        return 1
    print("all answers checked: correct")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
