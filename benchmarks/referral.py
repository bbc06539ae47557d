"""Referral write path in-process: a referral transaction (ServiceRequest + Task, rules, Provenance) and the
Task transitions, on SQLite. Prints latency percentiles; no target is asserted (the machine decides).

    python benchmarks/referral.py [N]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.config import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "referral" / "fixtures"
FHIR = {"Content-Type": "application/fhir+json"}
BS = "https://fhir.referral.cn/ig/CodeSystem/referral-business-status"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def summary(label: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    print(f"{label:32s} n={len(ms):4d}  p50={statistics.median(ms):6.1f} ms  p95={ms[int(len(ms) * 0.95) - 1]:6.1f} ms")


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, TestClient(create_app(Settings(data_dir=Path(tmp)))) as client:
        assert client.post("/", json=load("network.json"), headers=FHIR).status_code == 200
        referral = load("up-referral.json")
        sends, moves = [], []
        for _ in range(n):
            started = time.perf_counter()
            response = client.post("/", json=referral, headers=FHIR)
            sends.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            task_id = next(e["response"]["location"].split("/")[1] for e in response.json()["entry"]
                           if e["response"]["location"].startswith("Task/"))
            task = client.get(f"/Task/{task_id}").json()
            for status in ("received", "accepted"):
                task.update(status=status, businessStatus={"coding": [{"system": BS, "code": status}]})
                started = time.perf_counter()
                response = client.put(f"/Task/{task_id}", json=task, headers=FHIR)
                moves.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
                task = response.json() if response.content else client.get(f"/Task/{task_id}").json()
        summary("referral transaction (SR+Task)", sends)
        summary("Task transition (PUT)", moves)
        started = time.perf_counter()
        assert client.get("/$referral-statistics").status_code == 200
        print(f"$referral-statistics over {n} referrals: {(time.perf_counter() - started) * 1000:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
