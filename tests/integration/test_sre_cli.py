# SPDX-License-Identifier: Apache-2.0
"""The SRE command line against the real API server, run as an SRE would run it.

``wio status``, ``inspect``, ``renew``, ``revoke`` and ``verify`` are called through
``wio.cli.main`` with the control plane's kubeconfig (and once as ``python -m wio`` in a
subprocess), with wio running in-process; assertions are about what the SRE reads on the
terminal and what the cluster then holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration.conftest import OPERATOR_NAMESPACE, TRUST_DOMAIN
from tests.support.cluster import REPO
from tests.support.identities import (
    create_identity,
    delete_policy,
    get_identity,
    published_revocations,
    read_secret,
    revocations,
    wait_condition,
)
from tests.support.operator import InProcessOperator
from tests.support.scoped import create_credential, grant, ready_identity, wait_credential
from tests.support.waiting import wait_for
from wio.cli import main
from wio.devcluster import ControlPlane

pytestmark = pytest.mark.integration


Wio = Callable[..., tuple[int, str, str]]


@pytest.fixture
def wio(control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]) -> Wio:
    """``wio(*argv)`` runs the CLI with the cluster's kubeconfig: (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()  # what earlier calls printed is not this call's
        code = main([*argv, "--kubeconfig", str(control_plane.kubeconfig)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _no_material(text: str, *secrets: bytes) -> None:
    assert "PRIVATE KEY" not in text
    assert "BEGIN CERTIFICATE" not in text
    for secret in secrets:
        assert secret.decode() not in text


def test_status_lists_a_ready_identity_with_its_expiry_and_health(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, wio: Wio
) -> None:
    create_identity(kube, namespace, "payments", {"serviceAccountName": "payments"})
    status = wait_condition(kube, namespace, "payments", "Ready", "True")["status"]

    code, out, _ = wio("status", "-n", namespace, "-o", "json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["kind"] == "x509-svid"
    assert (row["namespace"], row["name"]) == (namespace, "payments")
    assert row["spiffeID"] == f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/payments"
    assert (row["ready"], row["health"]) == ("True", "OK")
    assert row["expiresAt"] == status["notAfter"]
    assert row["renewAt"] == status["renewalTime"]

    code, out, _ = wio("status", "-A", "--sort", "name")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["KIND", "NAMESPACE", "NAME"]
    (mine,) = [line for line in lines if f" {namespace} " in line]
    assert mine.split()[:3] == ["x509-svid", namespace, "payments"]
    assert status["notAfter"] in mine
    assert mine.endswith("OK")


def test_inspect_shows_serial_and_spiffe_id_and_never_the_key_or_token(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, wio: Wio
) -> None:
    create_identity(
        kube,
        namespace,
        "payments",
        {"serviceAccountName": "payments", "jwt": {"audiences": ["orders-api"]}},
    )
    status = wait_condition(kube, namespace, "payments", "Ready", "True")["status"]
    _, data = read_secret(kube, namespace, "payments-identity")

    code, out, _ = wio("inspect", f"{namespace}/payments", "-o", "json")
    assert code == 0
    shown = json.loads(out)
    assert shown["x509"]["serial"] == status["serialNumber"]
    assert shown["x509"]["spiffeID"] == status["spiffeID"]
    assert shown["x509"]["keyFingerprint"] == status["keyFingerprint"]
    assert shown["x509"]["matchesStatus"] is True
    assert shown["jwtSvid"]["claims"]["jti"] == status["jwtID"]
    assert shown["jwtSvid"]["claims"]["sub"] == status["spiffeID"]
    _no_material(out, data["token"], data["tls.key"])

    code, table, _ = wio("inspect", f"{namespace}/payments")
    assert code == 0
    assert status["serialNumber"] in table
    _no_material(table, data["token"], data["tls.key"])


def test_renew_forces_a_rotation_and_prints_the_new_serial(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, wio: Wio
) -> None:
    create_identity(kube, namespace, "payments", {"serviceAccountName": "payments"})
    before = wait_condition(kube, namespace, "payments", "Ready", "True")["status"]

    code, out, err = wio("renew", f"{namespace}/payments", "--timeout", "30")
    assert code == 0, err
    after = get_identity(kube, namespace, "payments")["status"]
    assert after["serialNumber"] != before["serialNumber"]
    assert f"x509 {before['serialNumber']} -> {after['serialNumber']}" in out
    assert after["lastForcedRotation"] in out


def test_revoke_lists_the_credential_and_verify_tells_the_old_from_the_new(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    wio: Wio,
    tmp_path: Path,
) -> None:
    create_identity(kube, namespace, "payments", {"serviceAccountName": "payments"})
    before = wait_condition(kube, namespace, "payments", "Ready", "True")["status"]
    _, data = read_secret(kube, namespace, "payments-identity")
    old = tmp_path / "old.pem"
    old.write_bytes(data["tls.crt"])
    # The trust bundle is published just after the first issuance.
    wait_for(lambda: wio("verify", str(old))[0] == 0, timeout=10, what="the old certificate valid")
    code, out, _ = wio("verify", str(old))
    assert out.startswith(f"valid x509-svid: spiffeID {before['spiffeID']}")

    code, out, err = wio("revoke", f"{namespace}/payments", "--reason", "key-leak")
    assert code == 0, err
    after = get_identity(kube, namespace, "payments")["status"]
    assert after["lastRevocation"].startswith("key-leak @ ")
    assert after["serialNumber"] != before["serialNumber"]
    assert f"x509 {before['serialNumber']}" in out
    listed = {(r["kind"], r["id"], r["reason"]) for r in revocations(kube, OPERATOR_NAMESPACE)}
    assert ("x509", before["serialNumber"], "RevokeRequested") in listed

    wait_for(
        lambda: before["serialNumber"] in published_revocations(kube, namespace, "x509"),
        timeout=10,
        what="the revocation in the namespace's trust bundle",
    )
    code, out, _ = wio("verify", str(old))
    assert code == 1
    assert out.startswith("invalid x509-svid (revoked):")
    _, data = read_secret(kube, namespace, "payments-identity")
    current = tmp_path / "current.pem"
    current.write_bytes(data["tls.crt"])
    code, out, _ = wio("verify", str(current), "-o", "json")
    assert code == 0
    assert json.loads(out)["serial"] == after["serialNumber"]


@pytest.fixture
def token_policy(kube: client.ApiClient, namespace: str) -> Iterator[None]:
    """Tokens for audience orders-api, scope o:r; kept for the whole test, since withdrawing
    the policy revokes what it allowed."""
    name = f"sre-{namespace}"
    grant(
        kube,
        namespace,
        name,
        tokens={"minTTL": "10s", "maxTTL": "1h", "audiences": ["orders-api"], "scopes": ["o:r"]},
    )
    yield
    delete_policy(kube, name)


@pytest.mark.usefixtures("token_policy")
def test_a_scoped_credential_is_listed_inspected_and_verified(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, wio: Wio, tmp_path: Path
) -> None:
    ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "orders",
        {"identityRef": "payments", "token": {"audience": "orders-api", "scopes": ["o:r"]}},
    )
    status = wait_credential(kube, namespace, "orders", "Ready", "True")["status"]
    _, data = read_secret(kube, namespace, status["secretName"])

    code, out, _ = wio("status", "-n", namespace, "-o", "yaml")
    assert code == 0
    assert "kind: token" in out
    assert f"expiresAt: '{status['expiresAt']}'" in out

    code, out, _ = wio("inspect", f"{namespace}/orders", "--kind", "scopedcredential")
    assert code == 0
    assert status["jti"] in out
    assert "o:r" in out
    _no_material(out, data["token"])

    token = tmp_path / "token"
    token.write_bytes(data["token"])
    # The namespace's trust bundle is published just after the first issuance.
    wait_for(
        lambda: wio("verify", str(token), "--audience", "orders-api")[0] == 0,
        timeout=10,
        what="the token valid against the published bundle",
    )
    code, out, err = wio("verify", str(token), "--audience", "orders-api")
    assert code == 0, out + err
    assert out.startswith("valid access-token:")
    code, out, _ = wio("verify", str(token), "--audience", "billing")
    assert code == 1
    assert "(wrong-audience)" in out


def test_a_bad_or_unknown_reference_is_a_clear_error_with_exit_2(
    namespace: str, operator: InProcessOperator, wio: Wio
) -> None:
    code, _, err = wio("inspect", f"{namespace}/nobody")
    assert code == 2
    assert f"no WorkloadIdentity or ScopedCredential nobody in namespace {namespace}" in err
    code, _, err = wio("renew", "nobody")
    assert code == 2
    assert "expected NAMESPACE/NAME" in err
    code, _, err = wio("revoke", "Bad/Name", "--reason", "x")
    assert code == 2
    assert "is not a namespace name" in err


def test_python_m_wio_status_runs_as_a_command(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    control_plane: ControlPlane,
) -> None:
    create_identity(kube, namespace, "payments", {"serviceAccountName": "payments"})
    wait_condition(kube, namespace, "payments", "Ready", "True")
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    env["PYTHONPATH"] = str(REPO / "operator")
    result = subprocess.run(
        [sys.executable, "-m", "wio", "status", "-n", namespace],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "payments" in result.stdout
    assert "x509-svid" in result.stdout
