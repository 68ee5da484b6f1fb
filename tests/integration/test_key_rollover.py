# SPDX-License-Identifier: Apache-2.0
"""CA and JWT-key rollover on demand, and the emergency distrust, against the real cluster.

An SRE runs ``wio rollover`` (here: its ``main``); what they would then check is what these
tests check: the trust ConfigMap and JWKS publish the new key before anything is signed by
it, the old one stays published, and after a distrust every Secret holds a credential from
the new key, re-issued at the configured rate, with Events on the signer Secret saying so.

Each test runs its own operator with its own local CA Secret (a short publication delay and
a low issuance rate), so the session's operator and CA are left as they were.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import itertools
import json
from collections.abc import Iterator
from typing import Any

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from kubernetes import client

from tests.integration.conftest import OPERATOR_NAMESPACE
from tests.support.identities import (
    create_identity,
    delete_policy,
    events_for,
    get_identity,
    patch_identity,
    read_secret,
    wait_condition,
)
from tests.support.operator import InProcessOperator
from tests.support.scoped import (
    create_credential,
    get_credential,
    grant,
    http,
    secret_token,
    wait_credential,
)
from tests.support.waiting import wait_for
from wio.cli import main as wio_cli
from wio.config import AdminConfig
from wio.devcluster import ControlPlane
from wio.k8s.access import from_kubeconfig

pytestmark = pytest.mark.integration

PUBLISH_DELAY = dt.timedelta(seconds=6)
RATE, BURST = 5.0, 2  # issuances per second: slow enough to see the bound
_names = itertools.count()


@dataclasses.dataclass
class Rolling:
    operator: InProcessOperator
    secret: str
    kubeconfig: str
    kube: client.ApiClient

    def request(self, key: str, *, distrust: bool = False) -> str:
        """Run ``wio rollover`` as an SRE would; returns the request ID it set."""
        args = ["rollover", key, "--kubeconfig", self.kubeconfig]
        args += ["--namespace", OPERATOR_NAMESPACE, "--secret", self.secret]
        assert wio_cli([*args, "--distrust"] if distrust else args) == 0
        annotation = f"identity.wio.dev/{'distrust' if distrust else 'rollover'}-{key}"
        secret = client.CoreV1Api(self.kube).read_namespaced_secret(self.secret, OPERATOR_NAMESPACE)
        return str(secret.metadata.annotations[annotation])


@pytest.fixture
def rolling(
    kube: client.ApiClient,
    control_plane: ControlPlane,
    operator: InProcessOperator,
    operator_config: AdminConfig,
) -> Iterator[Rolling]:
    """This test's own operator and local CA; the session's operator is back afterwards."""
    secret = f"wio-rollover-{next(_names)}"
    config = dataclasses.replace(
        operator_config,
        local_ca_secret=secret,
        rollover_publish_delay=PUBLISH_DELAY,
        issuance_rate=RATE,
        issuance_burst=BURST,
    )
    ours = InProcessOperator(config, from_kubeconfig(control_plane.kubeconfig))
    operator.stop()
    try:
        ours.start()
        try:
            yield Rolling(ours, secret, str(control_plane.kubeconfig), kube)
        finally:
            ours.stop()
    finally:
        operator.start()
        client.CoreV1Api(kube).delete_namespaced_secret(secret, OPERATOR_NAMESPACE)


# -- what a verifier sees --------------------------------------------------------------------


def _roots(kube: client.ApiClient, namespace: str) -> list[x509.Certificate]:
    data = client.CoreV1Api(kube).read_namespaced_config_map("wio-trust-bundle", namespace).data
    return x509.load_pem_x509_certificates(data["ca.crt"].encode())


def _published(kube: client.ApiClient, namespace: str, *roots: x509.Certificate) -> None:
    """Wait until the namespace's trust bundle holds every one of ``roots``."""
    wanted = {r.fingerprint(hashes.SHA256()) for r in roots}

    def probe() -> bool:
        try:
            published = {r.fingerprint(hashes.SHA256()) for r in _roots(kube, namespace)}
        except client.ApiException as err:
            if err.status == 404:
                return False
            raise
        return wanted <= published

    wait_for(probe, timeout=15, what=f"{len(roots)} roots in the trust bundle of {namespace}")


def _local_root(kube: client.ApiClient, secret: str, which: str = "active") -> x509.Certificate:
    """The local CA's active (or prepared) root, as its state Secret holds it."""
    pem = _ca_state(kube, secret)[which]["certificate"]
    return x509.load_pem_x509_certificate(pem.encode())


def _leaf(kube: client.ApiClient, namespace: str, secret: str) -> x509.Certificate:
    _, data = read_secret(kube, namespace, secret)
    return x509.load_pem_x509_certificate(data["tls.crt"])


def _issuer(cert: x509.Certificate, roots: list[x509.Certificate]) -> x509.Certificate | None:
    for root in roots:
        try:
            cert.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return root
    return None


def _kid(token: str) -> str:
    return str(pyjwt.get_unverified_header(token)["kid"])


def _jwks_kids(operator: InProcessOperator) -> list[str]:
    return [k["kid"] for k in http(f"{operator.base_url}/jwks.json").json()["keys"]]


def _event(kube: client.ApiClient, secret: str, reason: str, timeout: float = 30) -> Any:
    def probe() -> Any:
        found = [e for e in events_for(kube, OPERATOR_NAMESPACE, secret) if e.reason == reason]
        return found[-1] if found else None

    return wait_for(probe, timeout=timeout, what=f"Event {reason} on {secret}")


def _ca_state(kube: client.ApiClient, secret: str) -> dict[str, Any]:
    _, data = read_secret(kube, OPERATOR_NAMESPACE, secret)
    return dict(json.loads(data["ca-state.json"]))


def _force_rotation(kube: client.ApiClient, namespace: str, name: str, request: str) -> None:
    patch_identity(
        kube, namespace, name, {"metadata": {"annotations": {"identity.wio.dev/rotate": request}}}
    )
    wait_for(
        lambda: (
            (get_identity(kube, namespace, name).get("status") or {}).get("lastForcedRotation")
            == request
        ),
        timeout=20,
        what=f"forced rotation {request} of {name}",
    )


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- tests ---------------------------------------------------------------------------------


def test_a_ca_rollover_publishes_the_new_root_before_it_signs_and_keeps_the_old_one(
    kube: client.ApiClient, namespace: str, rolling: Rolling
) -> None:
    create_identity(kube, namespace, "api", {"serviceAccountName": "api"})
    wait_condition(kube, namespace, "api", "Ready", "True")
    old_root = _local_root(kube, rolling.secret)
    _published(kube, namespace, old_root)
    assert _issuer(_leaf(kube, namespace, "api-identity"), [old_root]) is not None

    request = rolling.request("ca")
    scheduled = _event(kube, rolling.secret, "CARolloverScheduled")
    assert "signs from" in scheduled.message
    state = _ca_state(kube, rolling.secret)
    activate_at = _parse_time(state["activateAt"])
    new_root = _local_root(kube, rolling.secret, "prepared")
    # Acknowledged in the same write that stored the new CA.
    secret, _ = read_secret(kube, OPERATOR_NAMESPACE, rolling.secret)
    assert secret.metadata.annotations["identity.wio.dev/rollover-ca-ack"] == request
    # Published to verifiers at once, next to the root that still signs.
    _published(kube, namespace, old_root, new_root)

    # A rotation before the publication period ends is still signed by the old root.
    _force_rotation(kube, namespace, "api", "before")
    leaf = _leaf(kube, namespace, "api-identity")
    issued_at = leaf.not_valid_before_utc + rolling.operator.config.skew  # notBefore is backdated
    expected = old_root if issued_at < activate_at else new_root
    assert _issuer(leaf, [old_root, new_root]) == expected

    _event(kube, rolling.secret, "CAActivated", timeout=PUBLISH_DELAY.total_seconds() + 20)
    _force_rotation(kube, namespace, "api", "after")
    assert _issuer(_leaf(kube, namespace, "api-identity"), [old_root, new_root]) == new_root
    # The old root stays published: certificates it signed are still valid.
    assert {old_root, new_root} <= set(_roots(kube, namespace))
    status = get_identity(kube, namespace, "api")["status"]
    assert status["rotations"] == 2  # the two forced ones; the rollover re-issued nothing


def test_distrusting_the_ca_drops_it_and_reissues_everything_it_signed_at_the_rate_limit(
    kube: client.ApiClient, namespace: str, rolling: Rolling
) -> None:
    names = [f"w{i}" for i in range(12)]
    for name in names:
        create_identity(kube, namespace, name, {"serviceAccountName": name})
    before = {n: wait_condition(kube, namespace, n, "Ready", "True")["status"] for n in names}
    old_root = _local_root(kube, rolling.secret)
    _published(kube, namespace, old_root)

    rolling.request("ca", distrust=True)
    warning = _event(kube, rolling.secret, "CADistrusted")
    assert warning.type == "Warning"

    def reissued() -> bool:
        roots = _roots(kube, namespace)
        if any(r == old_root for r in roots):
            return False
        return all(_issuer(_leaf(kube, namespace, f"{n}-identity"), roots) for n in names)

    wait_for(reissued, timeout=60, what="every certificate re-issued by the new root")
    done = _event(kube, rolling.secret, "ReissueComplete")
    assert "distrusted CA" in done.message
    issued_at = []
    for name in names:
        status = get_identity(kube, namespace, name)["status"]
        assert status["serialNumber"] != before[name]["serialNumber"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert "IssuerNotTrusted" in ready["message"]
        issued_at.append(_parse_time(status["notBefore"]))
    # Twelve re-issues at 5/s with a burst of 2 cannot land within one second.
    assert max(issued_at) - min(issued_at) >= dt.timedelta(seconds=1)
    metrics = http(f"{rolling.operator.ops_url}/metrics").text
    assert "wio_untrusted_credentials 0.0" in metrics
    assert 'wio_key_rollovers_total{key="ca",step="distrusted"} 1.0' in metrics


def test_jwt_key_rollover_then_distrust_remints_every_token_with_the_new_key(
    kube: client.ApiClient, namespace: str, rolling: Rolling
) -> None:
    policy = f"rollover-{namespace}"
    grant(
        kube,
        namespace,
        policy,
        tokens={"minTTL": "10s", "maxTTL": "1h", "audiences": ["orders-api"], "scopes": ["o:r"]},
    )
    try:
        _roll_jwt_keys(kube, namespace, rolling)
    finally:
        delete_policy(kube, policy)


def _roll_jwt_keys(kube: client.ApiClient, namespace: str, rolling: Rolling) -> None:
    spec = {"serviceAccountName": "api", "jwt": {"audiences": ["orders-api"], "ttl": "30m"}}
    create_identity(kube, namespace, "api", spec)
    wait_condition(kube, namespace, "api", "Ready", "True")
    before = set(_jwks_kids(rolling.operator))  # the local key, and OpenBao Transit's
    first_kid = _kid(secret_token(kube, namespace, "api-identity"))
    assert first_kid in before

    # Scheduled: the next key is in the JWKS at once, and signs only after the delay.
    rolling.request("jwt")
    _event(kube, rolling.secret, "JwtKeyRolloverScheduled")
    added = wait_for(
        lambda: set(_jwks_kids(rolling.operator)) - before, timeout=10, what="a new kid"
    )
    (next_kid,) = added
    _event(kube, rolling.secret, "JwtKeyActivated", timeout=PUBLISH_DELAY.total_seconds() + 20)
    _force_rotation(kube, namespace, "api", "after-activation")
    assert _kid(secret_token(kube, namespace, "api-identity")) == next_kid
    assert first_kid in _jwks_kids(rolling.operator)  # still published for its tokens
    create_credential(
        kube,
        namespace,
        "orders",
        {"identityRef": "api", "token": {"audience": "orders-api", "scopes": ["o:r"]}},
    )
    wait_credential(kube, namespace, "orders", "Ready", "True")
    assert _kid(secret_token(kube, namespace, "orders-credential")) == next_kid

    # Distrust: the active key leaves the JWKS at once, and every token it signed is re-minted;
    # the retired first key stays published for the tokens it signed.
    orders_before = get_credential(kube, namespace, "orders")["status"]["jti"]
    rolling.request("jwt", distrust=True)
    _event(kube, rolling.secret, "JwtKeyDistrusted")

    def reminted() -> bool:
        kids = _jwks_kids(rolling.operator)
        return (
            next_kid not in kids
            and first_kid in kids
            and all(
                _kid(secret_token(kube, namespace, s)) in kids
                for s in ("api-identity", "orders-credential")
            )
        )

    wait_for(reminted, timeout=60, what="every token re-minted with a published key")
    _event(kube, rolling.secret, "ReissueComplete")
    assert get_credential(kube, namespace, "orders")["status"]["jti"] != orders_before
    # A stock JWKS client verifies the new tokens from the issuer's published keys.
    jwks = pyjwt.PyJWKClient(f"{rolling.operator.base_url}/jwks.json")
    token = secret_token(kube, namespace, "orders-credential")
    key = jwks.get_signing_key_from_jwt(token)
    claims = pyjwt.decode(
        token, key.key, algorithms=["ES256"], audience="orders-api", options={"verify_iss": False}
    )
    assert claims["scope"] == "o:r"
    secret = base64.b64decode(
        client.CoreV1Api(kube)
        .read_namespaced_secret(rolling.secret, OPERATOR_NAMESPACE)
        .data["jwt-keyring.json"]
    )
    assert next_kid.encode() not in secret  # the distrusted key is not kept either
