"""Per-request cost of the FHIR app without HTTP: where the server's time goes.

Calls the ASGI app directly (no sockets, no client library) for read-by-id, create and a
10-entry transaction on a fresh SQLite store, prints microseconds per request, and with
``--profile`` the top functions by cumulative time (cProfile), so a change to the hot path
can be measured in seconds instead of a full load run. ``--auth`` runs the same requests as a
consortium member with a bearer token, the access policy and the audit trail on (the in-process
counterpart of ``auth.py``).

    python benchmarks/hot_path.py
    python benchmarks/hot_path.py --profile create --top 40
    python benchmarks/hot_path.py --auth --scenarios read,create
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.formats import json as fjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # auth.py's clients and token request, for --auth
DATA = HERE / "data"
JSON = b"application/fhir+json"
BASE = "http://127.0.0.1:8080"


async def call(app, method: str, path: str, body: bytes = b"", headers: tuple = ()) -> tuple[int, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"accept", JSON), (b"content-type", JSON),
                         (b"content-length", str(len(body)).encode()), *headers],
             "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80)}
    sent = False
    status, chunks = 0, []

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def scenario_requests(app, headers: tuple = ()) -> dict[str, tuple[str, str, bytes, int, tuple]]:
    create_body = (DATA / "servicerequest.json").read_bytes()
    status, answer = await call(app, "POST", "/ServiceRequest", create_body, headers)
    assert status == 201, answer
    id = fjson.loads(answer)["id"]
    return {
        "read": ("GET", f"/ServiceRequest/{id}", b"", 200, headers),
        "create": ("POST", "/ServiceRequest", create_body, 201, headers),
        "transaction": ("POST", "/", (DATA / "transaction.json").read_bytes(), 200, headers),
    }


def auth_settings(directory: Path) -> tuple[Settings, object]:
    """Settings with authentication on and the clients of ``auth.py`` registered (the member is the performer
    of the benchmark ServiceRequest); returns them with the member's private key."""
    from auth import make_clients

    clients_file, keys = make_clients(directory)
    settings = Settings(data_dir=directory, base_url=BASE, auth_enabled=True, auth_clients_file=str(clients_file),
                        auth_token_secret="hot-path-secret")
    return settings, keys["bench-member"]


def bearer(app, key) -> tuple:
    """The member's Authorization header, from the app's own token service (a signed client assertion)."""
    from auth import token_form

    from fhir_server.security.tokens import TOKEN_PATH

    token_url = f"{BASE}{TOKEN_PATH}"
    answer = app.state.tokens.issue(token_form("bench-member", key, token_url), token_url)
    return ((b"authorization", f"Bearer {answer['access_token']}".encode()),)


async def measure(app, request, count: int) -> tuple[float, float]:
    """Wall and CPU microseconds per request (CPU time is the steadier one on a busy machine)."""
    method, path, body, expect, headers = request
    for _ in range(min(50, count)):
        await call(app, method, path, body, headers)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        status, answer = await call(app, method, path, body, headers)
        if status != expect:
            raise SystemExit(f"{method} {path} answered {status}: {answer[:300]!r}")
    return (time.perf_counter() - start) / count * 1e6, (time.process_time() - cpu) / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="requests per scenario (a tenth for transactions)")
    parser.add_argument("--scenarios", default="read,create,transaction")
    parser.add_argument("--profile", choices=["read", "create", "transaction"])
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--auth", action="store_true", help="as a consortium member: bearer token, policy, audit")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fhir-hot-") as tmp:
        if args.auth:
            settings, key = auth_settings(Path(tmp))
            app = create_app(settings)
            headers = bearer(app, key)
        else:
            app, headers = create_app(Settings(data_dir=Path(tmp), base_url=BASE)), ()

        async def run() -> None:
            requests = await scenario_requests(app, headers)
            if args.profile:
                request = requests[args.profile]
                count = args.count // 10 if args.profile == "transaction" else args.count
                await measure(app, request, 50)
                profiler = cProfile.Profile(time.process_time)  # CPU time: steadier on a busy machine
                profiler.enable()
                await measure(app, request, count)
                profiler.disable()
                pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(args.top)
                return
            for name in args.scenarios.split(","):
                request = requests[name]
                count = args.count // 10 if name == "transaction" else args.count
                wall, cpu = await measure(app, request, count)
                print(f"{name:<12} {wall:8.0f} µs/request wall {cpu:8.0f} µs CPU")

        asyncio.run(run())
        app.state.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
