# SPDX-License-Identifier: Apache-2.0
"""End to end on kind: the image from the Dockerfile, installed as a platform team would.

The image is built with Docker and loaded into a kind cluster; the chart is installed with
helm when it is on PATH, else deploy/ is applied with kubectl (both with the image swapped for
the one just built). Then a WorkloadIdentity with a four-minute certificate gets a Secret, a pod
that mounts the Secret prints the serial of the certificate it sees, and the test waits until
that pod has seen a rotation (the kubelet refreshes mounted Secrets within about a minute).
Deleting the identity removes the Secret. The operator must never restart and never log an
RBAC denial.

Needs a Docker engine (``docker info`` must answer), ``kind`` (on PATH or ``--kind-bin``) and
``kubectl`` (on PATH or ``--kind-kubectl-bin``); anything missing skips the module with the
reason. ``--keep-cluster`` keeps the cluster for a look afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "wio"
CLUSTER = "wio-e2e"
IMAGE_REPOSITORY, IMAGE_TAG = "wio", "e2e"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
OPERATOR_NAMESPACE = "wio-system"
TENANT = "e2e-payments"
TRUST_DOMAIN = "e2e.wio.local"
JWT_ISSUER = "https://wio.e2e.wio.local"
DENIAL = re.compile(r"cannot \w+ resource|Not enough permissions", re.IGNORECASE)

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
    time.sleep(2)
"""


# -- prerequisites ------------------------------------------------------------------------------


def _docker_problem(docker: str | None) -> str | None:
    if docker is None:
        return "docker is not installed"
    try:
        subprocess.run([docker, "info"], capture_output=True, timeout=20, check=True)
    except subprocess.TimeoutExpired:
        return "no usable Docker engine: `docker info` did not answer within 20s"
    except (subprocess.CalledProcessError, OSError) as err:
        detail = getattr(err, "stderr", b"") or b""
        first = detail.decode(errors="replace").strip().splitlines()[:1]
        return f"no usable Docker engine: `docker info` failed ({' '.join(first) or err})"
    return None


def _tool(request: pytest.FixtureRequest, option: str, name: str) -> str | None:
    given = request.config.getoption(option, default=None)
    return str(Path(given).resolve()) if given else shutil.which(name)


def _run(*argv: str | Path, timeout: float = 600, **kwargs: Any) -> str:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result.stdout


def _wait(probe: Any, *, timeout: float, what: str, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (AssertionError, subprocess.SubprocessError, ValueError) as err:
            last = err
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


# -- the cluster ----------------------------------------------------------------------------------


class Kind:
    """A kind cluster with wio's image loaded; ``kubectl`` talks to it alone."""

    def __init__(self, cluster: Any, kubectl: str, kubeconfig: Path) -> None:
        self.cluster = cluster
        self.kubectl_path = kubectl
        self.kubeconfig = kubeconfig

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        return _run(
            self.kubectl_path,
            f"--kubeconfig={self.kubeconfig}",
            *args,
            input=stdin,
            timeout=timeout,
        )

    def apply(self, docs: list[dict[str, Any]], *extra: str) -> None:
        self.kubectl("apply", *extra, "-f", "-", stdin=yaml.safe_dump_all(docs))

    def get(self, *args: str) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return answer


@pytest.fixture(scope="module")
def kind(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kind]:
    docker = shutil.which("docker")
    problem = _docker_problem(docker)
    if problem:
        pytest.skip(problem)
    kind_bin = _tool(request, "kind_bin", "kind")
    if kind_bin is None:
        pytest.skip("kind is not installed: put it on PATH or pass --kind-bin")
    kubectl = _tool(request, "kind_kubectl_bin", "kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: put it on PATH or pass --kind-kubectl-bin")
    assert docker is not None
    _run(kind_bin, "version", timeout=30)

    from pytest_kind import KindCluster  # only where a cluster can really be made

    _run(docker, "build", "--tag", IMAGE, REPO, timeout=1800)
    workdir = tmp_path_factory.mktemp("kind")
    kubeconfig = workdir / "kubeconfig"
    with contextlib.chdir(workdir):  # pytest-kind keeps a state folder in the working directory
        cluster = KindCluster(
            CLUSTER,
            kubeconfig=kubeconfig,
            image=request.config.getoption("kind_image", default=None),
            kind_path=Path(kind_bin),
            kubectl_path=Path(kubectl),
        )
        cluster.create()
    try:
        cluster.load_docker_image(IMAGE)
        yield Kind(cluster, kubectl, kubeconfig)
    finally:
        if not request.config.getoption("keep_cluster", default=False):
            cluster.delete()


def _deploy_documents() -> list[dict[str, Any]]:
    """deploy/*.yaml with the image just built and an e2e trust domain and issuer."""
    docs: list[dict[str, Any]] = []
    for name in ("namespace.yaml", "rbac.yaml", "config.yaml", "operator.yaml"):
        docs.extend(d for d in yaml.safe_load_all((REPO / "deploy" / name).read_text()) if d)
    for doc in docs:
        if doc["kind"] == "Deployment":
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            container["image"] = IMAGE
            container["imagePullPolicy"] = "Never"
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "wio-config":
            config = yaml.safe_load(doc["data"]["config.yaml"])
            config.update(trustDomain=TRUST_DOMAIN, jwtIssuer=JWT_ISSUER)
            doc["data"]["config.yaml"] = yaml.safe_dump(config)
    return docs


@pytest.fixture(scope="module")
def installed(kind: Kind) -> str:
    """wio installed (helm if present, else kubectl apply); returns how."""
    helm = shutil.which("helm")
    if helm is not None:
        _run(
            helm,
            "upgrade",
            "--install",
            "wio",
            CHART,
            f"--kubeconfig={kind.kubeconfig}",
            f"--namespace={OPERATOR_NAMESPACE}",
            "--create-namespace",
            f"--set=image.repository={IMAGE_REPOSITORY}",
            f"--set=image.tag={IMAGE_TAG}",
            "--set=image.pullPolicy=Never",
            f"--set=config.trustDomain={TRUST_DOMAIN}",
            f"--set=config.jwtIssuer={JWT_ISSUER}",
            "--wait",
            "--timeout=5m",
        )
        how = "helm"
    else:
        crds = [
            d
            for p in sorted((REPO / "crds").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text())
            if d
        ]
        # Server-side: the CRDs are too large for kubectl's last-applied annotation.
        kind.apply(crds, "--server-side")
        kind.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        kind.apply(_deploy_documents())
        how = "kubectl"
    kind.kubectl(
        f"--namespace={OPERATOR_NAMESPACE}",
        "rollout",
        "status",
        "deployment/wio",
        "--timeout=300s",
        timeout=320,
    )
    return how


def _serial_annotation(kind: Kind) -> str | None:
    secret = kind.get(f"--namespace={TENANT}", "secret", "payments-identity")
    return (secret["metadata"].get("annotations") or {}).get("identity.wio.dev/serial")


def _tenant_objects() -> tuple[list[dict[str, Any]], dict[str, Any]]:
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
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": TENANT, "labels": {"wio-e2e": TENANT}},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "payments", "namespace": TENANT},
        },
        {
            # Four-minute certificates (below the 10-minute production minimum) for this
            # namespace only, so that a rotation happens while the test waits.
            "apiVersion": "identity.wio.dev/v1alpha1",
            "kind": "IdentityPolicy",
            "metadata": {"name": "e2e-short-ttls"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"wio-e2e": TENANT}},
                "x509": {"minTTL": "1m", "maxTTL": "1h"},
            },
        },
        {
            "apiVersion": "identity.wio.dev/v1alpha1",
            "kind": "WorkloadIdentity",
            "metadata": {"name": "payments", "namespace": TENANT},
            "spec": {"serviceAccountName": "payments", "x509": {"ttl": "4m"}},
        },
    ], {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "reader", "namespace": TENANT},
        "spec": {
            "serviceAccountName": "payments",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "reader",
                    "image": IMAGE,
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


def test_a_pod_mounting_the_identity_secret_sees_it_rotate(kind: Kind, installed: str) -> None:
    setup, pod = _tenant_objects()
    kind.apply(setup)
    kind.kubectl(
        f"--namespace={TENANT}",
        "wait",
        "--for=condition=Ready",
        "workloadidentity/payments",
        "--timeout=120s",
        timeout=130,
    )
    secret = kind.get(f"--namespace={TENANT}", "secret", "payments-identity")
    assert secret["type"] == "kubernetes.io/tls"
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret["data"])
    assert b"BEGIN CERTIFICATE" in base64.b64decode(secret["data"]["tls.crt"])

    kind.apply([pod])
    kind.kubectl(
        f"--namespace={TENANT}",
        "wait",
        "--for=condition=Ready",
        "pod/reader",
        "--timeout=120s",
        timeout=130,
    )

    def serials_seen() -> list[str]:
        logs = kind.kubectl(f"--namespace={TENANT}", "logs", "pod/reader")
        return [
            line.removeprefix("serial=") for line in logs.splitlines() if line.startswith("serial=")
        ]

    first = _wait(serials_seen, timeout=60, what="the pod to read its certificate")[0]
    assert first == _serial_annotation(kind)
    # Renewal at about half of 4 minutes, then the kubelet's refresh of the mounted Secret.
    seen = _wait(
        lambda: s if len(s := serials_seen()) >= 2 else None,
        timeout=420,
        what="the pod to see a rotated certificate",
    )
    assert seen[0] == first
    assert seen[1] != first
    # What the pod sees catches up with what wio wrote last.
    _wait(
        lambda: serials_seen()[-1] == _serial_annotation(kind),
        timeout=150,
        what="the pod to see the Secret's current certificate",
    )


def test_deleting_the_identity_removes_its_secret(kind: Kind, installed: str) -> None:
    kind.kubectl(
        f"--namespace={TENANT}", "delete", "workloadidentity/payments", "--timeout=60s", timeout=70
    )
    _wait(
        lambda: (
            "payments-identity"
            not in kind.kubectl(f"--namespace={TENANT}", "get", "secrets", "-o", "name")
        ),
        timeout=60,
        what="the Secret to be deleted",
    )


def test_operator_ran_without_restarts_or_rbac_denials(kind: Kind, installed: str) -> None:
    pods = kind.get(f"--namespace={OPERATOR_NAMESPACE}", "pods", "-l", "app.kubernetes.io/name=wio")
    (pod,) = pods["items"]
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"] is True
    assert status["restartCount"] == 0
    logs = kind.kubectl(f"--namespace={OPERATOR_NAMESPACE}", "logs", "deployment/wio")
    assert not [line for line in logs.splitlines() if DENIAL.search(line)], (
        f"installed with {installed}"
    )
