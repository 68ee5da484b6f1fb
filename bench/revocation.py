# SPDX-License-Identifier: Apache-2.0
"""Revocation at fleet scale, against a real control plane.

Run with ``python bench/revocation.py`` (``--runs 3`` for medians; ``--quick`` to try it).
Each run starts a fresh control plane, stores ``--preload`` unexpired revocations (24-hour
certificates of other namespaces, as a fleet that deleted them earlier leaves behind) in the
operator's own format, starts ``wio run``, issues ``--identities`` WorkloadIdentities in one
namespace, deletes them all at once, then deletes ``--latency`` more one by one. Printed
figures, with the targets of DESIGN/README:

- ``revoke_10000_s``: delete-collection to the last object gone (its finalizer lets go only
  once the Secret is deleted and the revocation stored), ≤ 150 s;
- ``outstanding``: unexpired revocations stored at the end, ≥ 20,000, with the largest shard
  and the largest trust ConfigMap far below the API server's 1 MiB object limit;
- ``revocation_p50_s`` / ``p99``: one delete to the object gone, with the list that full,
  p99 ≤ 1 s;
- ``writes_per_revoke``: the operator's API writes per revocation (audit log, Events
  excluded), ≤ 3;
- ``bare_secret_creates_per_s``: the API path's own ceiling in the same run (machines differ
  by a factor of three), and ``revoke_request_ratio``: four requests per revocation at the
  measured rate, over that ceiling.

Writes ``bench/results/revocation.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    BENCH_NAMESPACE,
    BENCH_TRUST_DOMAIN,
    GROUP_PATH,
    OPERATOR_USER,
    RESULTS,
    AuditLog,
    bench_environment,
    ensure_namespace,
    median,
    percentile,
)
from bench.rotation import bare_ceiling, create_identities, phase_revoke_all, wait_all_ready

from wio.clock import SystemClock
from wio.errors import ApiNotFound
from wio.k8s.client import KubeClient
from wio.k8s.revocations import DATA_KEY, RevocationStore
from wio.models.revocation import Revocation, parse_shard

TARGETS = {
    "revoke_10000_s": ("<=", 150),
    "outstanding": (">=", 20_000),
    "largest_shard_kib": ("<=", 512),
    "largest_trust_configmap_kib": ("<=", 768),
    "revocation_p99_s": ("<=", 1),
    "writes_per_revoke": ("<=", 3),
}


async def preload(kube: KubeClient, count: int) -> None:
    """``count`` unexpired revocations of 100 other namespaces, stored as wio stores them."""
    store = RevocationStore(
        kube, namespace=BENCH_NAMESPACE, name="wio-revocations", clock=SystemClock()
    )
    now = SystemClock().now().replace(microsecond=0)
    entries = [
        Revocation(
            "x509",
            secrets.token_hex(16),
            f"bench-old-{i % 100:02d}",
            f"spiffe://{BENCH_TRUST_DOMAIN}/ns/bench-old-{i % 100:02d}/sa/service-{i:05d}",
            now,
            now + dt.timedelta(hours=24),
            "Deleted",
            key_fingerprint="sha256:" + secrets.token_hex(32),
        )
        for i in range(count)
    ]
    for start in range(0, count, 1000):
        await store.add(entries[start : start + 1000])


async def stored(kube: KubeClient) -> tuple[int, int]:
    """(unexpired revocations stored, the largest shard's size in bytes)."""
    total, largest = 0, 0
    for shard in await kube.list(
        f"/api/v1/namespaces/{BENCH_NAMESPACE}/configmaps",
        label_selector="app.kubernetes.io/managed-by=wio",
    ):
        raw = (shard.get("data") or {}).get(DATA_KEY) or ""
        total += len(parse_shard(raw.encode()))
        largest = max(largest, len(json.dumps(shard).encode()))
    return total, largest


async def configmap_bytes(kube: KubeClient, namespace: str) -> int:
    body = await kube.get(f"/api/v1/namespaces/{namespace}/configmaps/wio-trust-bundle")
    return len(json.dumps(body).encode())


async def one_by_one(kube: KubeClient, namespace: str, count: int) -> list[float]:
    """Seconds from each delete to the object gone (the finalizer ran to its end)."""
    latencies = []
    for i in range(count):
        path = f"{GROUP_PATH}/namespaces/{namespace}/workloadidentities/id{i:05d}"
        began = time.monotonic()
        await kube.delete(path)
        while True:
            try:
                await kube.get(path)
            except ApiNotFound:
                break
            await asyncio.sleep(0.01)
        latencies.append(time.monotonic() - began)
    return latencies


async def run_once(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with bench_environment() as bench:
        cluster, access, kube, operator = bench.cluster, bench.access, bench.kube, bench.operator
        print(f"storing {args.preload} earlier revocations...", flush=True)
        await preload(kube, args.preload)
        # The API path's own ceiling, this run: bare Secret creates per second.
        results["bare_secret_creates_per_s"] = await bare_ceiling(kube, "bench-bare", 2000)
        results["start_s"] = operator.start(timeout=120)
        audit = AuditLog(cluster.audit_log)
        n = args.identities
        print(f"issuing {n} identities...", flush=True)
        await ensure_namespace(kube, "bench-big")
        await create_identities(kube, "bench-big", n, "24h")
        await wait_all_ready(access, "bench-big", {f"id{i:05d}" for i in range(n)}, 1800)
        print(f"deleting {n} at once...", flush=True)
        audit.mark()
        results["revoke_10000_s"] = await phase_revoke_all(access, kube, "bench-big", n)
        results["revocations_per_s"] = n / results["revoke_10000_s"]
        # Each revocation is at least four requests (the Secret delete, Kopf's finalizer
        # patch, the object's own deletion, its Event): their rate against bare creates.
        results["revoke_request_ratio"] = (
            4 * results["revocations_per_s"] / results["bare_secret_creates_per_s"]
        )
        writes = audit.writes(OPERATOR_USER, exclude_resources=("events",))
        results["writes_per_revoke"] = sum(writes.values()) / n
        results["writes_revoke_breakdown"] = writes
        await asyncio.sleep(3)  # the trust fan-out is debounced
        results["outstanding"], largest = await stored(kube)
        results["largest_shard_kib"] = largest / 1024
        results["largest_trust_configmap_kib"] = await configmap_bytes(kube, "bench-big") / 1024
        print(f"{args.latency} deletes one by one...", flush=True)
        await ensure_namespace(kube, "bench-one")
        await create_identities(kube, "bench-one", args.latency, "24h")
        await wait_all_ready(access, "bench-one", {f"id{i:05d}" for i in range(args.latency)}, 300)
        latencies = await one_by_one(kube, "bench-one", args.latency)
        results["revocation_p50_s"] = percentile(latencies, 0.5)
        results["revocation_p99_s"] = percentile(latencies, 0.99)
        results["rss_mib"] = operator.rss_mib()
    return results


def report(results: dict[str, Any]) -> None:
    print("\nfigure                                   value      target")
    for key, (op, target) in TARGETS.items():
        value = results[key]
        ok = value <= target if op == "<=" else value >= target
        print(f"{key:<40} {value:>10.3f}  {op} {target}  {'ok' if ok else 'MISSED'}")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for index in range(args.runs):
        print(f"run {index + 1} of {args.runs}", flush=True)
        runs.append(await run_once(args))
        report(runs[-1])
    figures = (*TARGETS, "revocation_p50_s", "revocations_per_s", "bare_secret_creates_per_s")
    medians = {key: median([run[key] for run in runs]) for key in figures}
    return {
        "medians": medians,
        "runs": runs,
        "settings": vars(args),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identities", type=int, default=10_000)
    parser.add_argument("--preload", type=int, default=10_000)
    parser.add_argument("--latency", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the harness")
    args = parser.parse_args()
    if args.quick:
        args.identities, args.preload, args.latency = 300, 1000, 20
    results = asyncio.run(main(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "revocation-quick.json" if args.quick else "revocation.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2, sort_keys=True))
    if args.runs > 1:
        print("\nmedians of", args.runs, "runs")
        report(results["medians"])
