# SPDX-License-Identifier: Apache-2.0
"""The local control plane with a real node runs pods, and leaves the machine as it found it.

Everything is checked from outside, as the e2e tier will use it: the Node's status, a pod's
phase and address, ``kubectl version``, what the kubelet's own credentials may read, and the
machine's processes, links, addresses, iptables and mounts after the node stops.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.cluster import api_client, missing_prerequisite
from tests.support.waiting import wait_for
from wio.devcluster import Binaries, ControlPlane, Unavailable, find_node_binaries
from wio.devcluster.binaries import kubernetes_version
from wio.devcluster.cluster import KUBERNETES_SERVICE_IP
from wio.devcluster.node import (
    BRIDGE,
    NODE_ADDRESS,
    POD_SUBNET,
    STATE_DIR,
    Node,
    why_node_unavailable,
)
from wio.devcluster.pause import PAUSE_IMAGE

# What marks an iptables rule or chain as the node's: the kubelet's chains, ours, the CNI
# plugins', the pod subnet, the Service IP, the bridge.
_OURS = ("KUBE-", "WIO-", "CNI-", str(POD_SUBNET), str(KUBERNETES_SERVICE_IP), BRIDGE)


def _traces() -> dict[str, list[str]]:
    """Whatever of the node's could be left on the machine (another engineer's Docker may
    change the rest of it meanwhile, so only what is recognisably ours is compared)."""

    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    def rules(save: str) -> list[str]:
        # Counters change by themselves; rules and chains are what matter.
        return [
            line.split(" [")[0]
            for line in run(save).splitlines()
            if any(mark in line for mark in _OURS)
        ]

    def command(cmdline: Path) -> str:
        try:
            return cmdline.read_text(errors="replace")
        except OSError:  # exited meanwhile
            return ""

    return {
        "iptables": rules("iptables-save"),
        "ip6tables": rules("ip6tables-save"),
        "bridge": [BRIDGE] if Path(f"/sys/class/net/{BRIDGE}").exists() else [],
        "node address": [
            a
            for a in run("ip", "-o", "addr", "show", "dev", "lo").split()
            if a == f"{NODE_ADDRESS}/32"
        ],
        "mounts": [
            line
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if str(STATE_DIR) in line
        ],
        "processes": [
            c.parent.name
            for c in Path("/proc").glob("[0-9]*/cmdline")
            if str(STATE_DIR) in command(c)
        ],
        "state": [str(STATE_DIR)] if STATE_DIR.exists() else [],
    }


@pytest.fixture(scope="module")
def node_cluster(binaries: Binaries) -> Iterator[tuple[ControlPlane, Node, dict[str, list[str]]]]:
    reason = why_node_unavailable()
    if reason is not None:
        missing_prerequisite(reason)
    try:
        node_binaries = find_node_binaries(build=True)
    except Unavailable as err:
        missing_prerequisite(str(err))
        raise  # unreachable: missing_prerequisite always raises
    before = _traces()
    with ControlPlane(binaries, node=node_binaries) as cluster, Node(cluster, node_binaries) as n:
        print(f"\nnode started in {n.startup_seconds:.1f}s after the control plane")
        yield cluster, n, before


@pytest.fixture
def node(node_cluster: tuple[ControlPlane, Node, dict[str, list[str]]]) -> Node:
    """The module's node, started again if a test stopped it."""
    n = node_cluster[1]
    n.start()
    return n


@pytest.fixture
def kube(
    node_cluster: tuple[ControlPlane, Node, dict[str, list[str]]],
) -> Iterator[client.ApiClient]:
    api = api_client(node_cluster[0].kubeconfig)
    yield api
    api.close()


@pytest.fixture
def namespace(kube: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def _pause_pod(name: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(name="pause", image=PAUSE_IMAGE, image_pull_policy="Never")
            ],
            termination_grace_period_seconds=0,
        ),
    )


def _running(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    pod: client.V1Pod = core.read_namespaced_pod(name, namespace)
    return pod if pod.status.phase == "Running" and pod.status.pod_ip else None


def test_the_node_becomes_ready(node: Node) -> None:
    seconds = node.wait_ready(timeout=60)
    print(f"\nnode Ready {seconds:.1f}s after the kubelet answered")


def test_a_pod_runs_on_the_node_with_an_address_in_the_pod_subnet(
    node: Node, kube: client.ApiClient, namespace: str
) -> None:
    node.wait_ready(timeout=60)
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _pause_pod("sleeper"))

    pod = wait_for(lambda: _running(core, namespace, "sleeper"), timeout=60, what="the pod to run")

    assert pod.spec.node_name == node.name
    assert ipaddress.ip_address(pod.status.pod_ip) in POD_SUBNET
    # The API server reaches the kubelet (on the node address, verifying its certificate).
    assert core.read_namespaced_pod_log("sleeper", namespace) == ""


_PROBE = """
import ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[2])
with urllib.request.urlopen(sys.argv[1], context=context, timeout=5) as response:
    print(response.status, response.read().decode())
"""


def test_pods_reach_the_api_server_at_the_kubernetes_service_ip(
    node_cluster: tuple[ControlPlane, Node, dict[str, list[str]]],
    node: Node,
    kube: client.ApiClient,
    namespace: str,
) -> None:
    """What an in-cluster client does (KUBERNETES_SERVICE_HOST, the cluster CA), run in the
    pod's network namespace: the pause image has no client of its own."""
    cluster = node_cluster[0]
    node.wait_ready(timeout=60)
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _pause_pod("client"))
    wait_for(lambda: _running(core, namespace, "client"), timeout=60, what="the pod to run")
    netns = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.startswith("nsfs ") and str(STATE_DIR) in line
    ]
    service = client.CoreV1Api(kube).read_namespaced_service("kubernetes", "default")
    url = f"https://{service.spec.cluster_ip}:443/livez"

    probe = subprocess.run(
        ["nsenter", f"--net={netns[0]}", sys.executable, "-c", _PROBE, url, str(cluster.ca_file)],
        capture_output=True,
        text=True,
    )

    assert service.spec.cluster_ip == str(KUBERNETES_SERVICE_IP)
    assert probe.stdout.strip() == "200 ok", probe.stderr


def test_kubectl_reports_the_pinned_version_for_client_and_server(
    node_cluster: tuple[ControlPlane, Node, dict[str, list[str]]], binaries: Binaries
) -> None:
    cluster = node_cluster[0]
    out = subprocess.run(
        [str(binaries.kubectl), f"--kubeconfig={cluster.kubeconfig}", "version", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    versions = json.loads(out)

    assert versions["clientVersion"]["gitVersion"] == kubernetes_version()
    assert versions["serverVersion"]["gitVersion"] == kubernetes_version()


def test_the_kubelet_acts_as_its_node_and_cannot_read_unrelated_secrets(
    node: Node, kube: client.ApiClient, namespace: str
) -> None:
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="unrelated"), string_data={"k": "v"}),
    )
    kubelet = api_client(node.kubeconfig)
    try:
        review = client.AuthenticationV1Api(kubelet).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(kubelet).read_namespaced_secret("unrelated", namespace)
    finally:
        kubelet.close()

    assert review.status.user_info.username == f"system:node:{node.name}"
    assert "system:nodes" in review.status.user_info.groups
    assert denied.value.status == 403


def test_a_second_node_on_the_same_machine_is_refused_while_one_runs(
    node_cluster: tuple[ControlPlane, Node, dict[str, list[str]]], node: Node
) -> None:
    cluster = node_cluster[0]
    assert cluster.node_binaries is not None
    second = Node(cluster, cluster.node_binaries, name="second", lock_timeout=1)

    with pytest.raises(Unavailable, match="only one node can run on a machine"):
        second.start()

    assert node.running
    node.wait_ready(timeout=60)


# Runs last in this module (definition order); the `node` fixture restarts the node for any
# test that would come after it.
def test_stopping_the_node_leaves_nothing_behind(
    node_cluster: tuple[ControlPlane, Node, dict[str, list[str]]],
    node: Node,
    kube: client.ApiClient,
    namespace: str,
) -> None:
    _, _, before = node_cluster
    node.wait_ready(timeout=60)
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _pause_pod("leftover"))
    wait_for(lambda: _running(core, namespace, "leftover"), timeout=60, what="the pod to run")
    pids = node.pids()

    node.stop()

    assert [p for p in pids if Path(f"/proc/{p}").exists()] == []
    assert _traces() == before
    assert all(trace == [] for trace in before.values())
