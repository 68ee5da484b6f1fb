# SPDX-License-Identifier: Apache-2.0
"""A restart across an upgrade adopts what the previous version wrote; nothing is re-minted.

The Secret's data keys, its annotation keys and the status fields are a stored format. These
tests spell them out literally, as the previous release wrote them, so a renamed key fails
here; then a fresh operator process is handed that state by its watches and must decide that
nothing needs doing: no write at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.recording import Harness, object_body, running
from wio.k8s.client import custom_path, secret_path
from wio.names import SCOPED_CREDENTIAL, SCOPED_CREDENTIALS, WORKLOAD_IDENTITIES, WORKLOAD_IDENTITY
from wio.service.views import ObjectKey

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

NS = "payments"
POLICY = {
    "namespaceSelector": {"matchLabels": {"team": "payments"}},
    "tokens": {"scopes": ["orders:read"]},
}
IDENTITY_SPEC = {"serviceAccountName": "api", "jwt": {"audiences": ["ledger"]}}
CREDENTIAL_SPEC = {
    "identityRef": "api",
    "token": {"audience": "orders-api", "scopes": ["orders:read"], "ttl": "15m"},
}

#: What the previous release wrote on a WorkloadIdentity's Secret and status.
IDENTITY_SECRET_KEYS = {
    "tls.crt",
    "tls.key",
    "ca.crt",
    "credential-bundle.private-key.pem",
    "example.org.spiffe-trust-bundle.pem",
    "bundle.spiffe.json",
    "token",
}
IDENTITY_ANNOTATIONS = {
    "identity.wio.dev/spiffe-id",
    "identity.wio.dev/serial",
    "identity.wio.dev/key-fingerprint",
    "identity.wio.dev/not-after",
    "identity.wio.dev/renew-at",
    "identity.wio.dev/spec-hash",
    "identity.wio.dev/jwt-expires-at",
    "identity.wio.dev/jwt-renew-at",
    "identity.wio.dev/jwt-id",
    "identity.wio.dev/rotations",
}
IDENTITY_STATUS = {
    "spiffeID",
    "secretName",
    "serialNumber",
    "keyFingerprint",
    "notBefore",
    "notAfter",
    "renewalTime",
    "specHash",
    "rotations",
    "jwtExpiresAt",
    "jwtRenewalTime",
    "jwtID",
}
#: What the previous release wrote on a ScopedCredential's token Secret.
CREDENTIAL_ANNOTATIONS = {
    "identity.wio.dev/source",
    "identity.wio.dev/spiffe-id",
    "identity.wio.dev/jti",
    "identity.wio.dev/expires-at",
    "identity.wio.dev/renew-at",
    "identity.wio.dev/spec-hash",
}
LABELS = {"app.kubernetes.io/managed-by", "identity.wio.dev/workloadidentity"}


def _watched(h: Harness) -> None:
    h.observe_namespace(NS, {"team": "payments"})
    h.observe_policy("payments", POLICY)


async def _stored(h: Harness, path: str) -> dict[str, Any]:
    return await h.kube.get(path)


async def test_a_restart_after_an_upgrade_adopts_the_identity_secret_it_finds() -> None:
    secret = secret_path(NS, "api-identity")
    identity = custom_path(WORKLOAD_IDENTITIES, NS, "api")
    async with running() as h:
        _watched(h)
        h.add_identity(object_body(WORKLOAD_IDENTITY, NS, "api", IDENTITY_SPEC))
        await h.identities.reconcile(ObjectKey(NS, "api"))
        written = await _stored(h, secret)
        assert set(written["data"]) == IDENTITY_SECRET_KEYS
        assert set(written["metadata"]["annotations"]) == IDENTITY_ANNOTATIONS
        assert set(written["metadata"]["labels"]) == LABELS
        assert written["type"] == "kubernetes.io/tls"
        status = (await _stored(h, identity))["status"]
        assert set(status) >= IDENTITY_STATUS

        # A new process: the start-up LIST gives the Secret's metadata only, then the watch
        # delivers its content. Neither makes a write.
        h = await h.restart()
        _watched(h)
        h.identities.observe_secret_metadata(written)
        h.identities.observe(await _stored(h, identity))
        out = await h.step(h.identities.reconcile(ObjectKey(NS, "api")))
        assert out.verbs_and_paths == []
        h.identities.observe_secret(written)
        out = await h.step(h.identities.reconcile(ObjectKey(NS, "api")))
        assert out.verbs_and_paths == []
        assert (await _stored(h, secret))["data"] == written["data"]


async def test_a_restart_after_an_upgrade_keeps_the_access_token_it_finds() -> None:
    secret = secret_path(NS, "orders-credential")
    credential = custom_path(SCOPED_CREDENTIALS, NS, "orders")
    async with running() as h:
        _watched(h)
        h.add_identity(object_body(WORKLOAD_IDENTITY, NS, "api", IDENTITY_SPEC))
        await h.identities.reconcile(ObjectKey(NS, "api"))
        h.add_credential(object_body(SCOPED_CREDENTIAL, NS, "orders", CREDENTIAL_SPEC))
        await h.scoped.reconcile(ObjectKey(NS, "orders"))
        written = await _stored(h, secret)
        assert set(written["data"]) == {"token"}
        assert set(written["metadata"]["annotations"]) == CREDENTIAL_ANNOTATIONS
        assert written["metadata"]["labels"]["identity.wio.dev/scopedcredential"] == "orders"
        assert written["type"] == "Opaque"

        h = await h.restart()
        _watched(h)
        h.identities.observe(await _stored(h, custom_path(WORKLOAD_IDENTITIES, NS, "api")))
        h.identities.observe_secret(await _stored(h, secret_path(NS, "api-identity")))
        h.scoped.observe(await _stored(h, credential))
        h.scoped.observe_secret(written)
        out = await h.step(h.scoped.reconcile(ObjectKey(NS, "orders")))
        assert out.verbs_and_paths == []
        assert (await _stored(h, secret))["data"] == written["data"]
