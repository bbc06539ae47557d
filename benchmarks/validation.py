"""Validation throughput on one core: profile validation of referral ServiceRequests against the IG,
next to structural-only validation (the shape check, the fhir.resources models where it is unsure) of the
same resources in the same run.

Target: profile validation ≥ 1,000 referral ServiceRequests per second on one core.

    python benchmarks/validation.py            # 5,000 resources, pinned to one CPU
    python benchmarks/validation.py -n 20000

The resources are the IG's referral examples varied per copy (ids, identifiers, diagnoses, shared
records, direction and scope), so no two are the same document.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

from fhir_server.ig.canonical import url
from fhir_server.ig.loader import examples
from fhir_server.validation.ig import ig_validator
from fhir_server.validation.structural import structural_issues

TARGET_PER_SECOND = 1000
DIAGNOSES = ["I10", "E11", "J44", "I63", "I50", "N18"]


def referrals(count: int) -> list[dict]:
    bases = [r for r in examples() if r["resourceType"] == "ServiceRequest"]
    result = []
    for i in range(count):
        resource = copy.deepcopy(bases[i % len(bases)])
        resource["id"] = f"bench-{i}"
        resource["identifier"][0]["value"] = f"ZZ2026{i:09d}"
        resource["reasonCode"][0]["coding"][0]["code"] = DIAGNOSES[i % len(DIAGNOSES)]
        resource["supportingInfo"] = [{"reference": f"Observation/obs-{i}-{k}"} for k in range(1 + i % 4)]
        result.append(resource)
    return result


def rate(label: str, check, resources: list[dict]) -> float:
    start = time.perf_counter()
    failures = sum(1 for resource in resources if any(i["severity"] == "error" for i in check(resource)))
    elapsed = time.perf_counter() - start
    per_second = len(resources) / elapsed
    print(f"{label:<28} {per_second:>10,.0f} resources/s  ({elapsed * 1e6 / len(resources):7.1f} µs each, {failures} invalid)")
    return per_second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="number of resources")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    validator = ig_validator()  # compiles every profile once
    profile = url("StructureDefinition", "referral-request")
    resources = referrals(args.n)
    for resource in resources[:200]:  # warm-up
        validator.validate(resource, [profile])
        structural_issues(resource)
    print(f"{args.n} referral ServiceRequests, one core")
    structural = rate("structural (shapes, models if unsure)", structural_issues, resources)
    profiled = rate("profile (IG referral-request)", lambda r: validator.validate(r, [profile]), resources)
    rate("structural + profile", lambda r: structural_issues(r) + validator.validate(r, [profile]), resources)
    verdict = "meets" if profiled >= TARGET_PER_SECOND else "MISSES"
    print(f"profile validation {verdict} the target of {TARGET_PER_SECOND:,}/s ({profiled / structural:.1f}× structural)")
    return 0 if profiled >= TARGET_PER_SECOND else 1


if __name__ == "__main__":
    raise SystemExit(main())
