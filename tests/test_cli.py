"""The newcomer's path: ``fhir-server serve`` starts on SQLite and the README's curl example works."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from fhir_server.cli import parser
from tests.server import free_port


def test_serve_defaults_are_safe():
    args = parser().parse_args(["serve"])
    assert args.host is None and args.port is None  # falls back to Settings: 127.0.0.1:8080


def test_serve_starts_and_readme_example_works(tmp_path):
    port = free_port()
    env = {**os.environ, "FHIR_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen([sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(port),
                                "--no-access-log"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = '{"resourceType":"Patient","id":"ignored","name":[{"family":"张","given":["三"]}],"gender":"male"}'
        created = httpx.post(f"{base}/Patient", content=body.encode(),
                             headers={"Content-Type": "application/fhir+json"})
        assert created.status_code == 201
        location = created.headers["location"]
        assert location.startswith(f"{base}/Patient/") and location.endswith("/_history/1")
        patient_id = location.split("/")[-3]
        read = httpx.get(f"{base}/Patient/{patient_id}").json()
        assert read["name"] == [{"family": "张", "given": ["三"]}] and read["gender"] == "male"
        assert (tmp_path / "data" / "fhir.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=15)
