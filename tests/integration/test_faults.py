# SPDX-License-Identifier: Apache-2.0
"""Rotation through failure: a killed operator, an API server outage, a frozen signer, and
scripted 409/410/429/500 answers.

This module runs on its own control plane and OpenBao, so taking them away disturbs no other
test. Fault durations are real time (an outage has to last); everything else waits on
conditions with deadlines.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client

from tests.support.cluster import REPO, api_client, install_crds
from tests.support.crashing_operator import CRASH_EXIT
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.identities import (
    apply_policy,
    condition,
    create_identity,
    get_identity,
    leaf,
    patch_identity,
    read_secret,
    wait_condition,
)
from tests.support.operator import InProcessOperator
from tests.support.waiting import wait_for
from wio.config import parse_config
from wio.devcluster import Binaries, ControlPlane, OpenBao
from wio.devcluster.processes import free_port
from wio.issuing.keys import PrivateKey
from wio.k8s.access import ClusterAccess, from_kubeconfig

TRUST_DOMAIN = "faults.wio.local"


@pytest.fixture(scope="module")
def cluster(binaries: Binaries) -> Iterator[ControlPlane]:
    with ControlPlane(binaries) as plane:
        yield plane


@pytest.fixture(scope="module")
def bao(binaries: Binaries) -> Iterator[OpenBao]:
    with OpenBao(binaries.bao) as server:
        yield server


@pytest.fixture(scope="module")
def kube2(cluster: ControlPlane) -> Iterator[client.ApiClient]:
    api = api_client(cluster.kubeconfig)
    install_crds(api, sorted((REPO / "crds").glob("*.yaml")))
    core = client.CoreV1Api(api)
    for name in ("wio-system", "faults"):
        core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(name=name, labels={"wio-faults": "yes"})
            )
        )
    apply_policy(
        api,
        "faults",
        {
            "namespaceSelector": {"matchLabels": {"wio-faults": "yes"}},
            "x509": {"minTTL": "10s", "maxTTL": "1h"},
            "signers": ["default", "openbao"],
        },
    )
    yield api
    api.close()


@pytest.fixture(scope="module")
def config_doc(bao: OpenBao, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    vault = hvac.Client(url=bao.address, token=bao.root_token)
    vault.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "8760h"})
    vault.secrets.pki.generate_root(
        "internal", "faults root", mount_point="pki", extra_params={"ttl": "8760h"}
    )
    vault.secrets.pki.create_or_update_role(
        "svid",
        {
            "allowed_uri_sans": f"spiffe://{TRUST_DOMAIN}/*",
            "basic_constraints_valid_for_non_ca": True,
            "require_cn": False,
            "use_csr_sans": False,
            "use_csr_common_name": False,
            "key_type": "any",
            "max_ttl": "1h",
        },
        mount_point="pki",
    )
    token = tmp_path_factory.mktemp("bao") / "token"
    token.write_text(bao.root_token)
    auth = {"method": "token", "tokenFile": str(token)}
    return {
        "trustDomain": TRUST_DOMAIN,
        "jwtIssuer": "https://wio.faults.wio.local",
        "operatorNamespace": "wio-system",
        "signers": {
            "default": {"x509": {"type": "local"}, "jwt": {"type": "local"}},
            "openbao": {
                "x509": {
                    "type": "vaultPKI",
                    "address": bao.address,
                    "mount": "pki",
                    "role": "svid",
                    "auth": auth,
                    "timeout": "2s",
                },
                "jwt": {"type": "local"},
            },
        },
        "logLevel": "DEBUG",
    }


def _operator(doc: dict[str, Any], access: ClusterAccess) -> InProcessOperator:
    config = parse_config(
        {**doc, "http": {"host": "127.0.0.1", "port": free_port(), "metricsPort": free_port()}}, {}
    )
    return InProcessOperator(config, access)


def _serial(data: dict[str, bytes]) -> str:
    return format(leaf(data).serial_number, "x")


def _healthy(kube: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """Ready, Secret and status agree, the certificate is valid now and the key matches."""
    body = get_identity(kube, namespace, name)
    ready = condition(body, "Ready")
    if not ready or ready["status"] != "True":
        return None
    status = body["status"]
    _, data = read_secret(kube, namespace, status["secretName"])
    cert = leaf(data)
    now = dt.datetime.now(dt.UTC)
    if (
        _serial(data) != status["serialNumber"]
        or not cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    ):
        return None
    assert PrivateKey.from_pem(data["tls.key"]).matches(cert.public_key())  # type: ignore[arg-type]
    return status


def _owned_secrets(kube: client.ApiClient, namespace: str, name: str) -> list[str]:
    listed = client.CoreV1Api(kube).list_namespaced_secret(
        namespace, label_selector=f"identity.wio.dev/workloadidentity={name}"
    )
    return [s.metadata.name for s in listed.items]


@pytest.mark.parametrize("step", ["after-signing", "after-secret-write", "before-status-patch"])
def test_operator_killed_mid_rotation_recovers_without_loss_or_duplicate(
    step: str,
    kube2: client.ApiClient,
    cluster: ControlPlane,
    config_doc: dict[str, Any],
    tmp_path: Path,
) -> None:
    name = f"crash-{step}"
    access = from_kubeconfig(cluster.kubeconfig)
    operator = _operator(config_doc, access)
    operator.start()
    try:
        create_identity(kube2, "faults", name, {"serviceAccountName": name, "x509": {"ttl": "10m"}})
        first = wait_for(lambda: _healthy(kube2, "faults", name), timeout=30, what="first issuance")
    finally:
        operator.stop()

    config_file = tmp_path / "config.json"
    config_file.write_text(
        json.dumps(
            {
                **config_doc,
                "http": {"host": "127.0.0.1", "port": free_port(), "metricsPort": free_port()},
            }
        )
    )
    patch_identity(
        kube2, "faults", name, {"metadata": {"annotations": {"identity.wio.dev/rotate": step}}}
    )
    crashing = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.crashing_operator",
            str(config_file),
            str(cluster.kubeconfig),
            step,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'operator'}"},
        capture_output=True,
        timeout=120,
    )
    assert crashing.returncode == CRASH_EXIT, crashing.stderr.decode()[-2000:]
    _, crashed_data = read_secret(kube2, "faults", f"{name}-identity")

    began = time.monotonic()
    operator = _operator(config_doc, access)
    operator.start()
    try:

        def recovered() -> dict[str, Any] | None:
            status = _healthy(kube2, "faults", name)
            return status if status and status.get("lastForcedRotation") == step else None

        status = wait_for(recovered, timeout=60, what=f"recovery after a crash {step}")
    finally:
        operator.stop()
    assert time.monotonic() - began < 60
    assert _owned_secrets(kube2, "faults", name) == [f"{name}-identity"]  # no duplicate
    assert status["serialNumber"] != first["serialNumber"]  # the forced rotation happened
    if step == "after-signing":
        assert _serial(crashed_data) == first["serialNumber"]  # nothing was written
    else:
        # The Secret the crashed process wrote is adopted, not replaced by yet another key.
        assert status["serialNumber"] == _serial(crashed_data)


def test_overdue_rotations_complete_within_a_minute_of_the_api_server_returning(
    kube2: client.ApiClient, cluster: ControlPlane, config_doc: dict[str, Any]
) -> None:
    operator = _operator(config_doc, from_kubeconfig(cluster.kubeconfig))
    operator.start()
    names = [f"outage{i}" for i in range(5)]
    try:
        for name in names:
            create_identity(
                kube2, "faults", name, {"serviceAccountName": name, "x509": {"ttl": "20s"}}
            )
        for name in names:
            wait_for(lambda n=name: _healthy(kube2, "faults", n), timeout=30, what=f"{name} issued")
        before = {n: get_identity(kube2, "faults", n)["status"]["serialNumber"] for n in names}
        cluster.stop_apiserver()
        time.sleep(30)  # the outage itself: every credential falls due while the API is away
        cluster.start_apiserver()
        returned = time.monotonic()
        for name in names:
            status = wait_for(
                lambda n=name: _healthy(kube2, "faults", n), timeout=60, what=f"{name} rotated"
            )
            assert status["serialNumber"] != before[name]
        assert time.monotonic() - returned < 60
    finally:
        operator.stop()


def test_signer_outage_keeps_the_old_secret_and_says_why_then_recovers(
    kube2: client.ApiClient, cluster: ControlPlane, config_doc: dict[str, Any], bao: OpenBao
) -> None:
    operator = _operator(config_doc, from_kubeconfig(cluster.kubeconfig))
    operator.start()
    name = "frozen"
    try:
        create_identity(
            kube2,
            "faults",
            name,
            {"serviceAccountName": name, "signer": "openbao", "x509": {"ttl": "10m"}},
        )
        first = wait_for(
            lambda: _healthy(kube2, "faults", name), timeout=30, what="issued by OpenBao"
        )
        secret_before = client.CoreV1Api(kube2).read_namespaced_secret(f"{name}-identity", "faults")
        (pid,) = bao.pids()
        os.kill(pid, signal.SIGSTOP)  # unreachable for less than half the TTL
        try:
            patch_identity(
                kube2,
                "faults",
                name,
                {"metadata": {"annotations": {"identity.wio.dev/rotate": "during-outage"}}},
            )
            body = wait_condition(kube2, "faults", name, "SignerAvailable", "False", timeout=30)
            assert condition(body, "Ready")["status"] == "True"  # type: ignore[index]
            secret_now = client.CoreV1Api(kube2).read_namespaced_secret(
                f"{name}-identity", "faults"
            )
            assert secret_now.metadata.resource_version == secret_before.metadata.resource_version
            with urllib.request.urlopen(f"{operator.ops_url}/metrics", timeout=5) as response:  # noqa: S310
                metrics = response.read().decode()
            assert 'wio_signer_errors_total{reason="SignerUnavailable",signer="openbao"}' in metrics
        finally:
            os.kill(pid, signal.SIGCONT)

        def recovered() -> dict[str, Any] | None:
            status = _healthy(kube2, "faults", name)
            body = get_identity(kube2, "faults", name)
            available = condition(body, "SignerAvailable")
            if (
                status
                and available
                and available["status"] == "True"
                and status["serialNumber"] != first["serialNumber"]
            ):
                return status
            return None

        wait_for(recovered, timeout=60, what="rotation once OpenBao answers again")
    finally:
        operator.stop()


def test_scripted_409_410_429_500_answers_are_survived(
    kube2: client.ApiClient, cluster: ControlPlane, config_doc: dict[str, Any]
) -> None:
    proxy = FaultProxy(cluster)
    proxy.start()
    faults = [
        proxy.add(Fault("PATCH", r"/secrets/", 429, times=2, headers={"Retry-After": "1"})),
        proxy.add(Fault("PATCH", r"/workloadidentities/[^/]+/status$", 500, times=2)),
        proxy.add(Fault("PATCH", r"/secrets/", 409, times=1)),
        proxy.add(Fault("GET", r"/workloadidentities$", 410, times=1, watch=True)),
    ]
    operator = _operator(config_doc, ClusterAccess(server=proxy.url))
    operator.start()
    names = [f"scripted{i}" for i in range(4)]
    try:
        for name in names:
            create_identity(kube2, "faults", name, {"serviceAccountName": name})
        for name in names:
            wait_for(
                lambda n=name: _healthy(kube2, "faults", n),
                timeout=60,
                what=f"{name} issued through faults",
            )
        # A watch restarted after 410 still delivers changes: a spec change is acted on.
        patch_identity(kube2, "faults", names[0], {"spec": {"x509": {"ttl": "30m"}}})
        wait_condition(kube2, "faults", names[0], "Ready", "True", reason="Rotated", timeout=30)
    finally:
        operator.stop()
        proxy.stop()
    for fault in faults:
        assert fault.served == fault.times, (
            f"{fault.method} {fault.path} {fault.status} served {fault.served}"
        )
