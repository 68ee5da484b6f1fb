# SPDX-License-Identifier: Apache-2.0
"""WorkloadIdentity end to end against the real control plane, with wio running in-process.

Every assertion is about what a platform team or a pod would see: the Secret and its
certificate, key and JWT; the status conditions; the trust-bundle ConfigMap; Events; metrics.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.request
from typing import Any

import hvac
import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.x509 import verification
from kubernetes import client

from tests.integration.conftest import OPERATOR_NAMESPACE, TRUST_DOMAIN
from tests.support.cluster import gone
from tests.support.identities import (
    apply_policy,
    condition,
    create_identity,
    delete_identity,
    delete_policy,
    events_for,
    get_identity,
    leaf,
    patch_identity,
    published_revocations,
    read_secret,
    revocations,
    spiffe_ids,
    trust_configmap,
    wait_condition,
)
from tests.support.operator import InProcessOperator
from tests.support.waiting import wait_for
from wio.backends.vault_pki import vault_serial
from wio.devcluster import OpenBao
from wio.issuing.keys import KeyType, PrivateKey, generate_private_key
from wio.policy.reconcile import MAX_DRIFT_REPAIRS

EXPECTED_KEYS = {
    "tls.crt",
    "tls.key",
    "ca.crt",
    "credential-bundle.private-key.pem",
    f"{TRUST_DOMAIN}.spiffe-trust-bundle.pem",
    "bundle.spiffe.json",
}


def _verify_chain(cert: x509.Certificate, roots_pem: bytes, now: dt.datetime) -> None:
    """The independent oracle: cryptography's path validation against the published roots."""
    store = verification.Store(x509.load_pem_x509_certificates(roots_pem))
    verifier = verification.PolicyBuilder().store(store).time(now).build_client_verifier()
    verifier.verify(cert, [])


def _jwks_key(jwks_json: str, token: str) -> pyjwt.PyJWK:
    kid = pyjwt.get_unverified_header(token)["kid"]
    keys = {k["kid"]: k for k in json.loads(jwks_json)["keys"]}
    return pyjwt.PyJWK(keys[kid])


def _allow_short_ttls(kube: client.ApiClient, namespace: str, name: str) -> None:
    """Tests lower the 10-minute production minimum through a policy, as the design says."""
    client.CoreV1Api(kube).patch_namespace(
        namespace, {"metadata": {"labels": {"wio-test": namespace}}}
    )
    apply_policy(
        kube,
        name,
        {
            "namespaceSelector": {"matchLabels": {"wio-test": namespace}},
            "x509": {"minTTL": "10s", "maxTTL": "24h"},
            "jwt": {"minTTL": "10s", "maxTTL": "1h", "audiences": ["orders-api"]},
            "signers": ["default", "openbao"],
        },
    )


def test_identity_gets_a_tls_secret_with_a_valid_svid_and_jwt(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create_identity(
        kube,
        namespace,
        "payments",
        {
            "serviceAccountName": "payments",
            "x509": {"ttl": "1h"},
            "jwt": {"audiences": ["orders-api"], "ttl": "30m"},
        },
    )
    body = wait_condition(kube, namespace, "payments", "Ready", "True")
    status = body["status"]
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/payments"
    assert status["spiffeID"] == spiffe_id
    assert status["secretName"] == "payments-identity"

    secret, data = read_secret(kube, namespace, "payments-identity")
    assert secret.type == "kubernetes.io/tls"
    assert EXPECTED_KEYS | {"token"} <= set(data)
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "wio"
    assert secret.metadata.owner_references[0].name == "payments"
    assert secret.metadata.annotations["identity.wio.dev/serial"] == status["serialNumber"]

    now = dt.datetime.now(dt.UTC)
    cert = leaf(data)
    assert spiffe_ids(cert) == [spiffe_id]
    _verify_chain(cert, data["ca.crt"], now)
    _verify_chain(cert, trust_configmap(kube, namespace)["ca.crt"].encode(), now)
    key = PrivateKey.from_pem(data["tls.key"])
    assert key.matches(cert.public_key())  # type: ignore[arg-type]
    assert data["tls.key"] == key.to_pkcs8_pem()  # PKCS#8, exactly as wio serialises it
    # SPIFFE filesystem delivery: the key first, then the chain.
    assert data["credential-bundle.private-key.pem"] == data["tls.key"] + data["tls.crt"]
    lifetime = cert.not_valid_after_utc - now
    assert dt.timedelta(minutes=58) < lifetime <= dt.timedelta(hours=1)
    assert status["keyFingerprint"] == key.fingerprint

    token = data["token"].decode()
    jwks = trust_configmap(kube, namespace)["jwks.json"]
    claims = pyjwt.decode(
        token, key=_jwks_key(jwks, token), algorithms=["ES256"], audience="orders-api"
    )
    assert claims["sub"] == spiffe_id
    assert (
        dt.timedelta(minutes=29)
        < dt.datetime.fromtimestamp(claims["exp"], dt.UTC) - now
        <= dt.timedelta(minutes=30)
    )

    bundle = json.loads(data["bundle.spiffe.json"])
    assert {k["use"] for k in bundle["keys"]} == {"x509-svid", "jwt-svid"}
    wait_for(
        lambda: "Issued" in {e.reason for e in events_for(kube, namespace, "payments")},
        timeout=10,
        what="an Issued Event",
    )


def test_openbao_pki_and_transit_sign_end_to_end(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, openbao: OpenBao
) -> None:
    _allow_short_ttls(kube, namespace, f"allow-{namespace}")
    try:
        create_identity(
            kube,
            namespace,
            "vaulted",
            {
                "serviceAccountName": "vaulted",
                "signer": "openbao",
                "x509": {"ttl": "15m"},
                "jwt": {"audiences": ["orders-api"], "ttl": "10m"},
            },
        )
        body = wait_condition(kube, namespace, "vaulted", "Ready", "True")
        _, data = read_secret(kube, namespace, "vaulted-identity")
        cert = leaf(data)
        assert "wio test root" in cert.issuer.rfc4514_string()
        assert spiffe_ids(cert) == [f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/vaulted"]
        _verify_chain(cert, data["ca.crt"], dt.datetime.now(dt.UTC))
        token = data["token"].decode()
        jwks = trust_configmap(kube, namespace)["jwks.json"]
        claims = pyjwt.decode(
            token, key=_jwks_key(jwks, token), algorithms=["ES256"], audience="orders-api"
        )
        assert claims["sub"].endswith("/sa/vaulted")

        serial = body["status"]["serialNumber"]
        delete_identity(kube, namespace, "vaulted")
        wait_for(
            lambda: gone(get_identity, kube, namespace, "vaulted"),
            timeout=30,
            what="the finalizer to finish",
        )
        vault = hvac.Client(url=openbao.address, token=openbao.root_token)
        revoked = vault.list("pki-wio/certs/revoked")["data"]["keys"]
        assert vault_serial(serial) in revoked
    finally:
        delete_policy(kube, f"allow-{namespace}")


def test_policy_denies_then_a_grant_allows(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create_identity(
        kube, namespace, "short", {"serviceAccountName": "short", "x509": {"ttl": "2m"}}
    )
    body = wait_condition(kube, namespace, "short", "PolicyDenied", "True")
    message = condition(body, "PolicyDenied")["message"]  # type: ignore[index]
    assert "spec.x509.ttl" in message
    assert condition(body, "Ready")["status"] == "False"  # type: ignore[index]
    assert gone(client.CoreV1Api(kube).read_namespaced_secret, "short-identity", namespace)

    _allow_short_ttls(kube, namespace, f"allow-{namespace}")
    try:
        wait_condition(kube, namespace, "short", "Ready", "True")
        _, data = read_secret(kube, namespace, "short-identity")
        cert = leaf(data)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(
            minutes=2, seconds=30
        )
    finally:
        delete_policy(kube, f"allow-{namespace}")


def test_spec_change_reissues_at_once(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create_identity(kube, namespace, "app", {"serviceAccountName": "app", "x509": {"ttl": "1h"}})
    first = wait_condition(kube, namespace, "app", "Ready", "True")["status"]
    patch_identity(
        kube, namespace, "app", {"spec": {"x509": {"ttl": "2h", "keyType": "ECDSAP384"}}}
    )
    second = wait_condition(kube, namespace, "app", "Ready", "True", reason="Rotated")["status"]
    assert second["serialNumber"] != first["serialNumber"]
    _, data = read_secret(kube, namespace, "app-identity")
    cert = leaf(data)
    assert cert.public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc > dt.timedelta(hours=1, minutes=30)


def test_first_rotation_happens_at_the_stored_renewal_time(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    _allow_short_ttls(kube, namespace, f"allow-{namespace}")
    try:
        create_identity(
            kube, namespace, "fast", {"serviceAccountName": "fast", "x509": {"ttl": "20s"}}
        )
        first = wait_condition(kube, namespace, "fast", "Ready", "True")["status"]
        renewal = dt.datetime.fromisoformat(first["renewalTime"].replace("Z", "+00:00"))
        not_after = dt.datetime.fromisoformat(first["notAfter"].replace("Z", "+00:00"))
        assert renewal < not_after

        def rotated() -> dict[str, str] | None:
            status = get_identity(kube, namespace, "fast").get("status") or {}
            return status if status.get("serialNumber") != first["serialNumber"] else None

        second = wait_for(rotated, timeout=30, what="the first rotation")
        seen_at = dt.datetime.now(dt.UTC)
        assert seen_at >= renewal
        assert seen_at < not_after  # rotated before expiry
        assert second["keyFingerprint"] != first["keyFingerprint"]  # a fresh key
        assert second["rotations"] == 1
        _, data = read_secret(kube, namespace, "fast-identity")
        assert format(leaf(data).serial_number, "x") == second["serialNumber"]
    finally:
        delete_policy(kube, f"allow-{namespace}")


def test_delete_removes_secret_and_publishes_the_revocation(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create_identity(
        kube, namespace, "gone", {"serviceAccountName": "gone", "jwt": {"audiences": ["a"]}}
    )
    status = wait_condition(kube, namespace, "gone", "Ready", "True")["status"]
    assert (
        "identity.wio.dev/finalizer"
        in get_identity(kube, namespace, "gone")["metadata"]["finalizers"]
    )
    delete_identity(kube, namespace, "gone")
    wait_for(
        lambda: gone(get_identity, kube, namespace, "gone"), timeout=30, what="finalizer removal"
    )
    assert gone(client.CoreV1Api(kube).read_namespaced_secret, "gone-identity", namespace)

    central = {(r["kind"], r["id"]): r for r in revocations(kube, OPERATOR_NAMESPACE)}
    entry = central[("x509", status["serialNumber"])]
    assert entry["spiffeID"] == status["spiffeID"]
    assert entry["keyFingerprint"] == status["keyFingerprint"]
    assert entry["reason"] == "Deleted"
    assert ("jwt", status["jwtID"]) in central

    def published() -> bool:
        return status["serialNumber"] in published_revocations(kube, namespace, "x509")

    wait_for(published, timeout=10, what="the revocation in the namespace trust bundle")
    wait_for(
        lambda: "Revoked" in {e.reason for e in events_for(kube, namespace, "gone")},
        timeout=10,
        what="a Revoked Event",
    )


def test_namespace_full_of_identities_is_deleted_to_completion(
    kube: client.ApiClient, operator: InProcessOperator
) -> None:
    core = client.CoreV1Api(kube)
    name = "t-nsfull"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    for i in range(5):
        create_identity(kube, name, f"id{i}", {"serviceAccountName": f"sa{i}"})
    for i in range(5):
        wait_condition(kube, name, f"id{i}", "Ready", "True")
    core.delete_namespace(name)
    wait_for(lambda: gone(core.read_namespace, name), timeout=90, what="the namespace to go")


def test_identity_deleted_while_operator_is_down_is_revoked_on_return(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create_identity(kube, namespace, "late", {"serviceAccountName": "late"})
    status = wait_condition(kube, namespace, "late", "Ready", "True")["status"]
    operator.stop()
    try:
        delete_identity(kube, namespace, "late")
        body = get_identity(kube, namespace, "late")
        assert body["metadata"].get("deletionTimestamp")  # held by our finalizer
    finally:
        operator.start()
    wait_for(lambda: gone(get_identity, kube, namespace, "late"), timeout=30, what="the finalizer")
    assert gone(client.CoreV1Api(kube).read_namespaced_secret, "late-identity", namespace)
    assert ("x509", status["serialNumber"]) in {
        (r["kind"], r["id"]) for r in revocations(kube, OPERATOR_NAMESPACE)
    }


def test_metrics_and_health_endpoints(
    operator: InProcessOperator, kube: client.ApiClient, namespace: str
) -> None:
    create_identity(kube, namespace, "m", {"serviceAccountName": "m"})
    wait_condition(kube, namespace, "m", "Ready", "True")
    with urllib.request.urlopen(f"{operator.ops_url}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    for name in (
        "wio_issuances_total",
        "wio_issuance_duration_seconds",
        "wio_credential_not_after_timestamp_seconds",
        "wio_credential_renewal_timestamp_seconds",
        "wio_credential_ready",
        "wio_outage_budget_seconds",
        "wio_rotations_overdue",
        "wio_signer_errors_total",
        "wio_revocations_total",
    ):
        assert name in text
    assert f'wio_credential_ready{{kind="x509",name="m",namespace="{namespace}"}} 1.0' in text
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"{operator.ops_url}{path}", timeout=5) as response:  # noqa: S310
            assert response.status == 200


@pytest.mark.parametrize("path", ["/jwks.json", "/bundle.spiffe.json"])
def test_public_trust_documents_are_served(operator: InProcessOperator, path: str) -> None:
    with urllib.request.urlopen(f"{operator.base_url}{path}", timeout=5) as response:  # noqa: S310
        doc = json.load(response)
    assert doc["keys"]
    for key in doc["keys"]:
        assert "d" not in key  # public halves only


def test_deleted_secret_is_recreated_with_a_fresh_credential(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create_identity(kube, namespace, "drift", {"serviceAccountName": "drift"})
    first = wait_condition(kube, namespace, "drift", "Ready", "True")["status"]
    client.CoreV1Api(kube).delete_namespaced_secret("drift-identity", namespace)

    def recreated() -> dict[str, bytes] | None:
        try:
            _, data = read_secret(kube, namespace, "drift-identity")
        except client.exceptions.ApiException:
            return None
        return data if format(leaf(data).serial_number, "x") != first["serialNumber"] else None

    data = wait_for(recreated, timeout=10, what="the Secret to be recreated")
    assert spiffe_ids(leaf(data)) == [first["spiffeID"]]
    status = wait_condition(kube, namespace, "drift", "Ready", "True")["status"]
    assert status["serialNumber"] == format(leaf(data).serial_number, "x")


def test_tampered_secret_is_reissued(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create_identity(kube, namespace, "tamper", {"serviceAccountName": "tamper"})
    first = wait_condition(kube, namespace, "tamper", "Ready", "True")["status"]
    # Swap in a key that does not match the certificate, as a careless hand edit would.
    foreign = generate_private_key(KeyType.ECDSAP256)
    client.CoreV1Api(kube).patch_namespaced_secret(
        "tamper-identity",
        namespace,
        {"data": {"tls.key": base64.b64encode(foreign.to_pkcs8_pem()).decode()}},
    )

    def repaired() -> dict[str, str] | None:
        status = get_identity(kube, namespace, "tamper").get("status") or {}
        return status if status.get("serialNumber") != first["serialNumber"] else None

    status = wait_for(repaired, timeout=10, what="the tampered Secret to be reissued")
    _, data = read_secret(kube, namespace, "tamper-identity")
    assert PrivateKey.from_pem(data["tls.key"]).matches(leaf(data).public_key())  # type: ignore[arg-type]
    assert "KeyMismatch" in condition(get_identity(kube, namespace, "tamper"), "Ready")["message"]  # type: ignore[index]
    assert status["rotations"] == 1


def test_rotate_annotation_forces_a_rotation_and_is_acknowledged(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create_identity(kube, namespace, "forced", {"serviceAccountName": "forced"})
    first = wait_condition(kube, namespace, "forced", "Ready", "True")["status"]
    patch_identity(
        kube,
        namespace,
        "forced",
        {"metadata": {"annotations": {"identity.wio.dev/rotate": "now-1"}}},
    )

    def acknowledged() -> dict[str, str] | None:
        status = get_identity(kube, namespace, "forced").get("status") or {}
        return status if status.get("lastForcedRotation") == "now-1" else None

    status = wait_for(acknowledged, timeout=10, what="the forced rotation")
    assert status["serialNumber"] != first["serialNumber"]
    assert status["keyFingerprint"] != first["keyFingerprint"]


def test_a_competing_writer_cannot_make_wio_loop(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create_identity(kube, namespace, "fought", {"serviceAccountName": "fought"})
    wait_condition(kube, namespace, "fought", "Ready", "True")
    core = client.CoreV1Api(kube)
    for attempt in range(MAX_DRIFT_REPAIRS + 1):
        before = get_identity(kube, namespace, "fought")["status"]["serialNumber"]
        foreign = generate_private_key(KeyType.ECDSAP256).to_pkcs8_pem()
        core.patch_namespaced_secret(
            "fought-identity",
            namespace,
            {"data": {"tls.key": base64.b64encode(foreign).decode()}},
            field_manager="rogue-writer",
        )
        if attempt < MAX_DRIFT_REPAIRS:

            def repaired(serial: str = before) -> bool:
                status = get_identity(kube, namespace, "fought").get("status") or {}
                return status.get("serialNumber") != serial

            wait_for(repaired, timeout=10, what=f"repair {attempt + 1}")
    body = wait_condition(kube, namespace, "fought", "Issuing", "False", reason="ConflictingWriter")
    message = condition(body, "Issuing")["message"]  # type: ignore[index]
    assert "rogue-writer" in message
    assert body["status"]["rotations"] == MAX_DRIFT_REPAIRS  # no repair past the budget


def test_withdrawing_the_policy_that_granted_a_credential_revokes_it(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    """A credential only a policy allowed (a 2-minute certificate) does not outlive it."""
    _allow_short_ttls(kube, namespace, f"allow-{namespace}")
    try:
        create_identity(
            kube, namespace, "short", {"serviceAccountName": "short", "x509": {"ttl": "2m"}}
        )
        issued = wait_condition(kube, namespace, "short", "Ready", "True")["status"]
    finally:
        delete_policy(kube, f"allow-{namespace}")
    body = wait_condition(kube, namespace, "short", "PolicyDenied", "True")
    assert "spec.x509.ttl" in condition(body, "PolicyDenied")["message"]  # type: ignore[index]
    assert not body["status"].get("serialNumber")
    wait_for(
        lambda: gone(client.CoreV1Api(kube).read_namespaced_secret, "short-identity", namespace),
        timeout=10,
        what="the revoked credential's Secret to go",
    )
    listed = {(r["kind"], r["id"], r["reason"]) for r in revocations(kube, OPERATOR_NAMESPACE)}
    assert ("x509", issued["serialNumber"], "PolicyWithdrawn") in listed
    wait_for(
        lambda: (
            {"Revoked", "PolicyDenied"} <= {e.reason for e in events_for(kube, namespace, "short")}
        ),
        timeout=10,
        what="the Revoked and PolicyDenied Events",
    )


def test_the_revoke_annotation_revokes_without_deleting_and_issues_afresh(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create_identity(kube, namespace, "leaky", {"serviceAccountName": "leaky"})
    first = wait_condition(kube, namespace, "leaky", "Ready", "True")["status"]
    patch_identity(
        kube,
        namespace,
        "leaky",
        {"metadata": {"annotations": {"identity.wio.dev/revoke": "key-leak"}}},
    )

    def honoured() -> dict[str, Any] | None:
        status = get_identity(kube, namespace, "leaky").get("status") or {}
        return status if status.get("lastRevocation") == "key-leak" else None

    status = wait_for(honoured, timeout=15, what="the revocation request to be honoured")
    assert status["serialNumber"] != first["serialNumber"]
    listed = {(r["kind"], r["id"], r["reason"]) for r in revocations(kube, OPERATOR_NAMESPACE)}
    assert ("x509", first["serialNumber"], "RevokeRequested") in listed
    assert ("x509", status["serialNumber"], "RevokeRequested") not in listed
    _, data = read_secret(kube, namespace, "leaky-identity")
    assert format(leaf(data).serial_number, "x") == status["serialNumber"]
