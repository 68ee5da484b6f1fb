# SPDX-License-Identifier: Apache-2.0
"""Several replicas against the real API server: one leads, every one serves.

The leader holds the Lease ``wio-leader``, reconciles and writes; a standby serves discovery,
the JWKS, the SPIFFE bundle and introspection from what the leader stored, and takes over
when the leader stops (at once when it hands the Lease back on SIGTERM; one lease duration
after a crash). One replica here runs as a real ``wio run`` process, so SIGTERM and SIGKILL
are the real thing; the other runs in-process, so the test can look at its state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.integration.conftest import OPERATOR_NAMESPACE, TRUST_DOMAIN
from tests.support.cluster import REPO
from tests.support.identities import (
    create_identity,
    get_identity,
    patch_identity,
    read_secret,
    wait_condition,
)
from tests.support.operator import InProcessOperator
from tests.support.scoped import (
    create_credential,
    credential_gone,
    delete_credential,
    grant,
    http,
    introspect,
    ready_identity,
    secret_token,
    wait_credential,
)
from wio.cli import main
from wio.config import parse_config
from wio.devcluster import ControlPlane
from wio.devcluster.processes import free_port
from wio.k8s.access import from_kubeconfig

# Short leases so the tests run in seconds; the defaults (10 s / 7 s / 2 s) scale the same.
TIMINGS = {"leaseDuration": "4s", "renewDeadline": "3s", "retryPeriod": "1s"}


def _loopback_ports() -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": free_port(), "metricsPort": free_port()}


def _lease_holder(kube: client.ApiClient) -> str:
    lease = client.CoordinationV1Api(kube).read_namespaced_lease("wio-leader", OPERATOR_NAMESPACE)
    return lease.spec.holder_identity or ""


@dataclass
class Replicas:
    kube: client.ApiClient
    namespace: str
    issuer: str
    doc: dict[str, Any]
    kubeconfig: Path
    workdir: Path

    def in_process(self, identity: str) -> InProcessOperator:
        doc = {**self.doc, "http": _loopback_ports()}
        return InProcessOperator(
            parse_config(doc, {}), from_kubeconfig(self.kubeconfig), identity=identity
        )

    def process(self, identity: str) -> subprocess.Popen[bytes]:
        """``wio run`` in a process of its own."""
        config = self.workdir / f"{identity}.yaml"
        config.write_text(json.dumps({**self.doc, "http": _loopback_ports()}))
        log = open(self.workdir / f"{identity}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "wio", "run", "--config", str(config)],
            cwd=REPO,
            env={
                **os.environ,
                "KUBECONFIG": str(self.kubeconfig),
                "WIO_POD_NAME": identity,
                "PYTHONPATH": str(REPO / "operator"),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return proc

    def log_of(self, identity: str) -> str:
        return (self.workdir / f"{identity}.log").read_text(errors="replace")


@pytest.fixture
def replicas(
    kube: client.ApiClient,
    namespace: str,
    control_plane: ControlPlane,
    operator: InProcessOperator,
    tmp_path: Path,
) -> Iterator[Replicas]:
    """This test's replicas in the session's operator namespace (same signer state); the
    session's operator is stopped meanwhile and back afterwards."""
    issuer = "https://wio-ha.test.wio.local"
    doc = {
        "trustDomain": TRUST_DOMAIN,
        "jwtIssuer": issuer,
        "operatorNamespace": OPERATOR_NAMESPACE,
        "watchNamespaces": [namespace],
        "signers": {"default": {"x509": {"type": "local"}, "jwt": {"type": "local"}}},
        "leaderElection": TIMINGS,
        "logLevel": "DEBUG",
    }
    grant(
        kube,
        namespace,
        f"ha-{namespace}",
        tokens={"audiences": ["orders-api"], "scopes": ["orders:*"], "minTTL": "10s"},
        jwt={"minTTL": "10s", "maxTTL": "1h", "audiences": [f"{issuer}/introspect"]},
    )
    operator.stop()
    try:
        yield Replicas(kube, namespace, issuer, doc, control_plane.kubeconfig, tmp_path)
    finally:
        operator.start()


def _started(proc: subprocess.Popen[bytes], replicas: Replicas, identity: str) -> None:
    """Wait until the process replica leads (it holds the Lease and has reconciled)."""
    deadline = time.monotonic() + 60
    while not (_lease_holder_or_none(replicas.kube) or "").startswith(f"{identity}_"):
        assert proc.poll() is None, replicas.log_of(identity)[-3000:]
        assert time.monotonic() < deadline, "the process replica never led"
        time.sleep(0.1)


@contextlib.contextmanager
def _process_leader_and_standby(
    replicas: Replicas,
) -> Iterator[tuple[subprocess.Popen[bytes], InProcessOperator]]:
    """``replica-a`` leading as a real ``wio run`` process, ``replica-b`` standing by
    in-process; both gone afterwards."""
    proc = replicas.process("replica-a")
    standby = replicas.in_process("replica-b")
    try:
        _started(proc, replicas, "replica-a")
        standby.start(leading=False)
        yield proc, standby
    finally:
        _stop(proc, signal.SIGKILL)
        standby.stop()


def _lease_holder_or_none(kube: client.ApiClient) -> str | None:
    try:
        return _lease_holder(kube)
    except client.ApiException:
        return None


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        proc.wait(timeout=60)


def test_one_replica_leads_and_a_standby_serves_what_the_leader_stored(
    replicas: Replicas,
) -> None:
    kube, ns = replicas.kube, replicas.namespace
    leader = replicas.in_process("replica-a")
    standby = replicas.in_process("replica-b")
    leader.start()
    try:
        standby.start(leading=False)
        try:
            assert _lease_holder(kube).startswith("replica-a")
            assert leader.metrics.registry.get_sample_value("wio_leader") == 1
            assert standby.metrics.registry.get_sample_value("wio_leader") == 0
            assert not standby.leading

            # The public documents are the leader's, served by the standby too.
            for path in ("/.well-known/openid-configuration", "/jwks.json"):
                assert http(standby.base_url + path).json() == http(leader.base_url + path).json()
            bundle = http(standby.base_url + "/bundle.spiffe.json").json()
            assert bundle["keys"] == http(leader.base_url + "/bundle.spiffe.json").json()["keys"]

            # Only the leader reconciles: the identity is issued, by the leader.
            caller_spec = {
                "serviceAccountName": "orders",
                "jwt": {"audiences": [f"{replicas.issuer}/introspect"], "ttl": "30m"},
            }
            ready_identity(kube, ns, "orders", caller_spec)
            caller = secret_token(kube, ns, "orders-identity")
            ready_identity(kube, ns, "payments")
            create_credential(
                kube,
                ns,
                "orders-read",
                {
                    "identityRef": "payments",
                    "token": {"audience": "orders-api", "scopes": ["orders:read"], "ttl": "15m"},
                },
            )
            wait_credential(kube, ns, "orders-read", "Ready", "True")
            token = secret_token(kube, ns, "orders-read-credential")
            assert introspect(standby.base_url, token, caller).json()["active"] is True

            # A revocation the leader stores counts on the standby at once.
            delete_credential(kube, ns, "orders-read")
            gone = _wait(lambda: credential_gone(kube, ns, "orders-read"), timeout=30)
            inactive = _wait(
                lambda: introspect(standby.base_url, token, caller).json()["active"] is False,
                timeout=10,
            )
            print(f"\nstandby saw the revocation {inactive - gone:.3f}s after the delete completed")
            assert inactive - gone <= 1.0
        finally:
            standby.stop()
    finally:
        leader.stop()


def test_sigterm_hands_the_lease_over_and_the_standby_carries_on_without_reminting(
    replicas: Replicas,
) -> None:
    kube, ns = replicas.kube, replicas.namespace
    with _process_leader_and_standby(replicas) as (proc, standby):
        status = ready_identity(kube, ns, "payments")
        _, before = read_secret(kube, ns, "payments-identity")

        stopped = time.monotonic()
        _stop(proc, signal.SIGTERM)
        assert proc.returncode == 0, replicas.log_of("replica-a")[-3000:]
        assert "released the leader Lease" in replicas.log_of("replica-a")
        # Its audit stream (standard output) is whole: what it issued, under one chain.
        assert '"action":"issue"' in replicas.log_of("replica-a")
        assert main(["audit", "verify", str(replicas.workdir / "replica-a.log")]) == 0
        _wait(lambda: standby.leading, timeout=15)
        took = time.monotonic() - stopped
        print(f"\nhandover on SIGTERM: {took:.2f}s from the signal to the standby leading")
        assert _lease_holder(kube).startswith("replica-b")
        assert standby.metrics.registry.get_sample_value("wio_leader") == 1

        # Nothing valid was minted again; the new leader still does the work.
        assert _serial(kube, ns, "payments") == status["serialNumber"]
        assert read_secret(kube, ns, "payments-identity")[1] == before
        patch_identity(
            kube, ns, "payments", {"metadata": {"annotations": {"identity.wio.dev/rotate": "1"}}}
        )
        rotated = wait_condition(kube, ns, "payments", "Ready", "True", timeout=30)
        _wait(
            lambda: (
                get_identity(kube, ns, "payments")["status"]["serialNumber"]
                != status["serialNumber"]
            ),
            timeout=30,
        )
        assert rotated


def test_a_crashed_leader_is_replaced_once_its_lease_runs_out(replicas: Replicas) -> None:
    kube, ns = replicas.kube, replicas.namespace
    with _process_leader_and_standby(replicas) as (proc, standby):
        status = ready_identity(kube, ns, "payments")
        killed = time.monotonic()
        _stop(proc, signal.SIGKILL)
        _wait(lambda: standby.leading, timeout=30)
        took = time.monotonic() - killed
        print(f"\nfailover after SIGKILL: {took:.2f}s (lease {TIMINGS['leaseDuration']})")
        # Not before the Lease ran out (the dead leader might only have been slow), and
        # soon after: one lease duration, one retry period and the start.
        assert 3.0 <= took <= 4 + 1 + 10
        assert _serial(kube, ns, "payments") == status["serialNumber"]
        create_identity(kube, ns, "after", {"serviceAccountName": "after"})
        wait_condition(kube, ns, "after", "Ready", "True", timeout=30)


def test_a_leader_that_cannot_renew_stops_leading_and_stands_by_until_it_can_lead_again(
    replicas: Replicas,
) -> None:
    """Taken over by force (someone rewrites the Lease), the old leader must step down at
    once, and lead again, without a restart, when the Lease is free."""
    kube, ns = replicas.kube, replicas.namespace
    leader = replicas.in_process(f"replica-{uuid.uuid4().hex[:6]}")
    leader.start()
    api = client.CoordinationV1Api(kube)
    try:
        lease = api.read_namespaced_lease("wio-leader", OPERATOR_NAMESPACE)
        lease.spec.holder_identity = "usurper"
        lease.spec.renew_time = dt.datetime.now(dt.UTC)
        lease.spec.lease_duration_seconds = 3600
        api.replace_namespaced_lease("wio-leader", OPERATOR_NAMESPACE, lease)
        _wait(lambda: leader.metrics.registry.get_sample_value("wio_leader") == 0, timeout=15)
        assert _lease_holder(kube) == "usurper"
        assert not leader.leading
        _wait(leader.serving, timeout=15)  # a standby again: it still serves the documents
        create_identity(kube, ns, "meanwhile", {"serviceAccountName": "meanwhile"})
        api.delete_namespaced_lease("wio-leader", OPERATOR_NAMESPACE)
        _wait(lambda: leader.leading, timeout=30)
        wait_condition(kube, ns, "meanwhile", "Ready", "True", timeout=30)
    finally:
        leader.stop()
    assert not leader.errors


def _wait(probe: Any, *, timeout: float) -> float:
    """Poll ``probe`` until true; return the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if probe():
                return time.monotonic()
        except (client.ApiException, OSError, KeyError):
            pass
        assert time.monotonic() < deadline, f"timed out after {timeout}s"
        time.sleep(0.05)


def _serial(kube: client.ApiClient, namespace: str, name: str) -> str:
    return str(get_identity(kube, namespace, name)["status"]["serialNumber"])
