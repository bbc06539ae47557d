"""A real server process for tests that need real sockets and real parallelism."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(data_dir, workers: int = 2, env: dict | None = None):
    """Start ``uvicorn`` with the app factory on a free loopback port; yield its base URL."""
    port = free_port()
    environment = {**os.environ, "FHIR_DATA_DIR": str(data_dir), "FHIR_BASE_URL": f"http://127.0.0.1:{port}",
                   **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "fhir_server.app:serve_app", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{base}/metadata", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
