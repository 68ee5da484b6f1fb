# SPDX-License-Identifier: Apache-2.0
"""End to end: the image from the Dockerfile, installed by Helm as a platform team would.

The chart goes in with its defaults (two replicas, leader election) and the image just built.
Then, from the outside only:
- one replica leads and both serve the same public documents;
- a pod that mounts a WorkloadIdentity's Secret sees its certificate rotate;
- deleting the WorkloadIdentity deletes the Secret and records the revocation, and the
  pod's mount stops changing;
- the operator never restarts on its own and never logs an RBAC denial;
- the leader is killed three times while a fleet of short-lived identities rotates: a
  standby leads within 15 s each time, nothing expires, nothing valid is minted again, and
  the API server's audit log shows the replicas' writes never interleave.

Runs on every backend of ``conftest.py`` (the local node; kind where it exists).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import re
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.conftest import CHART, Cluster

OPERATOR_NAMESPACE = "wio-system"
TENANT = "e2e-payments"
FLEET = "e2e-fleet"
FLEET_SIZE = 20
TRUST_DOMAIN = "e2e.wio.local"
JWT_ISSUER = "https://wio.e2e.wio.local"
SKEW = dt.timedelta(seconds=30)  # the default backdating of notBefore
DENIAL = re.compile(r"cannot \w+ resource|Not enough permissions|forbidden", re.IGNORECASE)
FAILOVER_BUDGET = 15.0

# Runs in the reader pod (the wio image has Python and cryptography): print the serial of the
# certificate in the mounted Secret whenever it changes.
READER = """
import time
from cryptography import x509
seen = None
while True:
    try:
        with open("/var/run/wio/tls.crt", "rb") as handle:
            serial = format(x509.load_pem_x509_certificates(handle.read())[0].serial_number, "x")
    except (OSError, ValueError) as err:
        serial = None
        print("unreadable", type(err).__name__, flush=True)
    if serial and serial != seen:
        print("serial=" + serial, flush=True)
        seen = serial
    time.sleep(1)
"""

# Asks the replica in the same pod for one of its documents: the public ones over TLS on
# 8443 (its certificate names the Service, not 127.0.0.1: only the body matters here), the
# metrics in plain HTTP on 9090.
FETCH = """
import ssl, sys, urllib.request
url = ("http://127.0.0.1:9090" if sys.argv[1] == "/metrics" else "https://127.0.0.1:8443")
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with urllib.request.urlopen(url + sys.argv[1], timeout=5, context=context) as answer:
    sys.stdout.write(answer.read().decode())
"""


def _wait(probe: Any, *, timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (AssertionError, ValueError, KeyError, client.ApiException) as err:
            last = err
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Cluster:
    """wio installed by Helm with the chart's defaults, as README's Deploy section says."""
    began = time.monotonic()
    cluster.helm(
        "upgrade",
        "--install",
        "wio",
        str(CHART),
        f"--namespace={OPERATOR_NAMESPACE}",
        "--create-namespace",
        f"--set=image.repository={cluster.image_repository}",
        f"--set=image.tag={cluster.image_tag}",
        "--set=image.pullPolicy=Never",
        f"--set=config.trustDomain={TRUST_DOMAIN}",
        f"--set=config.jwtIssuer={JWT_ISSUER}",
        "--wait",
        "--timeout=5m",
    )
    print(f"\nhelm install --wait took {time.monotonic() - began:.1f}s")
    return cluster


def _operator_pods(cluster: Cluster) -> list[dict[str, Any]]:
    pods = cluster.get(
        f"--namespace={OPERATOR_NAMESPACE}", "pods", "-l", "app.kubernetes.io/name=wio"
    )
    return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]


def _leader(cluster: Cluster) -> str:
    """The pod holding the Lease (its identity is ``<pod>_<suffix>``)."""
    lease = cluster.get(f"--namespace={OPERATOR_NAMESPACE}", "lease", "wio-leader")
    holder: str = lease["spec"].get("holderIdentity") or ""
    return holder.rsplit("_", 1)[0]


def _leader_other_than(cluster: Cluster, gone: str) -> str | None:
    leader = _leader(cluster)
    return leader if leader and leader != gone else None


def _fetch(cluster: Cluster, pod: str, path: str) -> str:
    return cluster.kubectl(
        f"--namespace={OPERATOR_NAMESPACE}",
        "exec",
        pod,
        "-c",
        "wio",
        "--",
        "python",
        "-c",
        FETCH,
        path,
    )


def _all_ready(cluster: Cluster, count: int = 2) -> list[str]:
    pods = _operator_pods(cluster)
    ready = [
        p["metadata"]["name"]
        for p in pods
        if all(s.get("ready") for s in p["status"].get("containerStatuses") or [{}])
    ]
    return ready if len(ready) == count == len(pods) else []


def test_two_replicas_run_one_leads_and_both_serve_the_public_documents(installed: Cluster) -> None:
    pods = _wait(lambda: _all_ready(installed), timeout=120, what="both replicas Ready")
    leader = _wait(lambda: _leader(installed), timeout=30, what="a leader")
    assert leader in pods
    for path in ("/jwks.json", "/.well-known/openid-configuration"):
        documents = {pod: json.loads(_fetch(installed, pod, path)) for pod in pods}
        assert len({json.dumps(d, sort_keys=True) for d in documents.values()}) == 1, path
    leading = {pod: _fetch(installed, pod, "/metrics") for pod in pods}
    for pod, metrics in leading.items():
        flag = "1.0" if pod == leader else "0.0"
        assert f"\nwio_leader {flag}\n" in metrics, pod


def _tenant_objects(cluster: Cluster) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The tenant's namespace, account, policy and identity; and the pod that reads it."""
    restricted = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return [
        *_namespace_with_policy(TENANT),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "payments", "namespace": TENANT},
        },
        {
            "apiVersion": "identity.wio.dev/v1alpha1",
            "kind": "WorkloadIdentity",
            "metadata": {"name": "payments", "namespace": TENANT},
            "spec": {"serviceAccountName": "payments", "x509": {"ttl": "2m"}},
        },
    ], {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "reader", "namespace": TENANT},
        "spec": {
            "serviceAccountName": "payments",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "reader",
                    "image": cluster.image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", READER],
                    "securityContext": restricted,
                    "volumeMounts": [
                        {"name": "identity", "mountPath": "/var/run/wio", "readOnly": True}
                    ],
                }
            ],
            "volumes": [{"name": "identity", "secret": {"secretName": "payments-identity"}}],
        },
    }


def _namespace_with_policy(namespace: str) -> list[dict[str, Any]]:
    # Short certificates (below the 10-minute production minimum) for this namespace only,
    # so that rotations happen while the test watches.
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"wio-e2e": namespace}},
        },
        {
            "apiVersion": "identity.wio.dev/v1alpha1",
            "kind": "IdentityPolicy",
            "metadata": {"name": f"short-ttls-{namespace}"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"wio-e2e": namespace}},
                "x509": {"minTTL": "1m", "maxTTL": "1h"},
            },
        },
    ]


def _serial_annotation(cluster: Cluster) -> str | None:
    secret = cluster.get(f"--namespace={TENANT}", "secret", "payments-identity")
    return (secret["metadata"].get("annotations") or {}).get("identity.wio.dev/serial")


def _serials_seen(cluster: Cluster) -> list[str]:
    logs = cluster.kubectl(f"--namespace={TENANT}", "logs", "pod/reader")
    return [
        line.removeprefix("serial=") for line in logs.splitlines() if line.startswith("serial=")
    ]


def test_a_pod_mounting_the_identity_secret_sees_it_rotate(installed: Cluster) -> None:
    setup, pod = _tenant_objects(installed)
    installed.apply(setup)
    installed.kubectl(
        f"--namespace={TENANT}", "wait", "--for=condition=Ready", "workloadidentity/payments",
        "--timeout=120s", timeout=130,
    )  # fmt: skip
    secret = installed.get(f"--namespace={TENANT}", "secret", "payments-identity")
    assert secret["type"] == "kubernetes.io/tls"
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret["data"])
    assert b"BEGIN CERTIFICATE" in base64.b64decode(secret["data"]["tls.crt"])

    installed.apply([pod])
    installed.kubectl(
        f"--namespace={TENANT}", "wait", "--for=condition=Ready", "pod/reader",
        "--timeout=120s", timeout=130,
    )  # fmt: skip
    first = _wait(lambda: _serials_seen(installed), timeout=60, what="the pod's certificate")[0]
    assert first == _serial_annotation(installed)
    # Renewal at about half of 2 minutes, then the kubelet's refresh of the mounted Secret.
    seen = _wait(
        lambda: s if len(s := _serials_seen(installed)) >= 2 else None,
        timeout=180,
        what="the pod to see a rotated certificate",
    )
    assert seen[0] == first
    assert seen[1] != first
    _wait(
        lambda: _serials_seen(installed)[-1] == _serial_annotation(installed),
        timeout=90,
        what="the pod to see the Secret's current certificate",
    )


@dataclass
class Deleted:
    serials_seen: list[str]
    would_have_renewed: dt.datetime


@pytest.fixture(scope="module")
def deleted() -> dict[str, Deleted]:
    return {}


def test_deleting_the_identity_removes_its_secret_and_revokes_it(
    installed: Cluster, deleted: dict[str, Deleted]
) -> None:
    status = installed.get(f"--namespace={TENANT}", "workloadidentity", "payments")["status"]
    installed.kubectl(
        f"--namespace={TENANT}", "delete", "workloadidentity/payments", "--timeout=60s", timeout=70
    )
    _wait(
        lambda: (
            "payments-identity"
            not in installed.kubectl(f"--namespace={TENANT}", "get", "secrets", "-o", "name")
        ),
        timeout=60,
        what="the Secret to be deleted",
    )
    shards = installed.get(
        f"--namespace={OPERATOR_NAMESPACE}", "configmaps", "-l", "app.kubernetes.io/managed-by=wio"
    )
    stored = " ".join(json.dumps(c.get("data") or {}) for c in shards["items"])
    assert status["serialNumber"] in stored
    deleted["payments"] = Deleted(
        _serials_seen(installed), dt.datetime.fromisoformat(status["renewalTime"])
    )


def test_the_operator_ran_without_restarts_or_rbac_denials(installed: Cluster) -> None:
    pods = _operator_pods(installed)
    assert len(pods) == 2
    for pod in pods:
        (status,) = pod["status"]["containerStatuses"]
        assert status["restartCount"] == 0, pod["metadata"]["name"]
        logs = installed.kubectl(
            f"--namespace={OPERATOR_NAMESPACE}", "logs", pod["metadata"]["name"]
        )
        assert not [line for line in logs.splitlines() if DENIAL.search(line)], pod["metadata"][
            "name"
        ]


@dataclass
class Observed:
    """Every certificate each fleet identity had, as its status showed them, and whether any
    was ever expired when looked at."""

    serials: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, api: client.ApiClient) -> None:
        objects = client.CustomObjectsApi(api)
        while not self.stop.is_set():
            try:
                listed = objects.list_namespaced_custom_object(
                    "identity.wio.dev", "v1alpha1", FLEET, "workloadidentities"
                )
            except client.ApiException:
                continue
            now = dt.datetime.now(dt.UTC)
            for body in listed["items"]:
                status = body.get("status") or {}
                if "serialNumber" not in status:
                    continue
                name = body["metadata"]["name"]
                history = self.serials.setdefault(name, [])
                if not history or history[-1]["serialNumber"] != status["serialNumber"]:
                    history.append(status)
                if dt.datetime.fromisoformat(status["notAfter"]) <= now:
                    self.expired.append(f"{name} {status['serialNumber']} at {now}")
            self.stop.wait(1.0)


def _writers(audit_log: Any) -> list[tuple[str, str, str]]:
    """(time, replica identity, object) of every write wio made, from the audit log."""
    writes: list[tuple[str, str, str]] = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        agent = event.get("userAgent") or ""
        if event.get("stage") != "ResponseComplete" or not agent.startswith("wio/"):
            continue
        if event.get("verb") not in ("create", "update", "patch", "delete"):
            continue
        ref = event.get("objectRef") or {}
        target = f"{ref.get('resource')}/{ref.get('namespace')}/{ref.get('name')}"
        writes.append(
            (event["requestReceivedTimestamp"], agent.split("(", 1)[1].rstrip(")"), target)
        )
    return sorted(writes)


def test_a_killed_leader_is_replaced_within_15s_and_nothing_expires_or_is_reminted(
    installed: Cluster,
) -> None:
    installed.apply(_namespace_with_policy(FLEET))
    fleet = [
        {
            "apiVersion": "identity.wio.dev/v1alpha1",
            "kind": "WorkloadIdentity",
            "metadata": {"name": f"w{i:02d}", "namespace": FLEET},
            "spec": {"serviceAccountName": f"w{i:02d}", "x509": {"ttl": "1m"}},
        }
        for i in range(FLEET_SIZE)
    ]
    installed.apply(fleet)
    installed.kubectl(
        f"--namespace={FLEET}", "wait", "--for=condition=Ready", "workloadidentity", "--all",
        "--timeout=120s", timeout=130,
    )  # fmt: skip
    observed = Observed()
    with installed.api() as api:
        watcher = threading.Thread(target=observed.watch, args=(api,), daemon=True)
        watcher.start()
        failovers: list[float] = []
        try:
            for _ in range(3):
                _wait(lambda: _all_ready(installed), timeout=120, what="both replicas Ready")
                leader = _leader(installed)
                killed = time.monotonic()
                installed.kill(leader, OPERATOR_NAMESPACE)
                successor = _wait(
                    lambda gone=leader: _leader_other_than(installed, gone),
                    timeout=60,
                    what="a standby to lead",
                    interval=0.2,
                )
                failovers.append(time.monotonic() - killed)
                print(f"\nkilled {leader}; {successor} led after {failovers[-1]:.1f}s")
            # Rotations go on under the new leader: every identity rotates again.
            marks = {name: len(history) for name, history in observed.serials.items()}
            _wait(
                lambda: all(len(observed.serials[n]) > marks[n] for n in marks),
                timeout=90,
                what="every identity to rotate under the last leader",
            )
        finally:
            observed.stop.set()
            watcher.join(10)
    print(
        f"failover after SIGKILL of the leader: {', '.join(f'{s:.1f}s' for s in failovers)}; "
        f"median {statistics.median(failovers):.1f}s"
    )
    assert max(failovers) <= FAILOVER_BUDGET
    assert len(observed.serials) == FLEET_SIZE
    assert not observed.expired
    # Nothing valid was minted again: each certificate came no sooner than its predecessor's
    # renewal time (a new leader re-minting what it found would break this at once).
    early = [
        (name, new["serialNumber"])
        for name, history in observed.serials.items()
        for old, new in itertools.pairwise(history)
        if dt.datetime.fromisoformat(new["notBefore"]) + SKEW
        < dt.datetime.fromisoformat(old["renewalTime"]) - dt.timedelta(seconds=1)
    ]
    assert not early
    if installed.audit_log is not None:
        # The replicas' writes never interleave: each leader's run of writes ends before the
        # next leader's starts (a standby writes nothing at all).
        runs: list[str] = []
        for _, replica, _ in _writers(installed.audit_log):
            if not runs or runs[-1] != replica:
                runs.append(replica)
        assert len(runs) == len(set(runs)), runs
        assert len(runs) >= 4  # the first leader and three successors


def test_a_deleted_identitys_mount_stopped_changing(
    installed: Cluster, deleted: dict[str, Deleted]
) -> None:
    before = deleted["payments"]
    # Past the time it would have been renewed, plus the kubelet's refresh.
    while dt.datetime.now(dt.UTC) < before.would_have_renewed + dt.timedelta(seconds=30):
        time.sleep(1)
    assert _serials_seen(installed) == before.serials_seen


@pytest.fixture(scope="module", autouse=True)
def _operator_logs_on_failure(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[None]:
    """The operator's last log lines, when something here failed."""
    yield
    if request.session.testsfailed:
        selector = "app.kubernetes.io/name=wio"
        namespace = f"--namespace={OPERATOR_NAMESPACE}"
        print(cluster.kubectl(namespace, "logs", "-l", selector, "--tail=200", "--prefix"))
