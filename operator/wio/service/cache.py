# SPDX-License-Identifier: Apache-2.0
"""The watched caches: one object holding what every controller reads of the cluster.

Namespaces' labels and IdentityPolicies feed policy evaluation; the WorkloadIdentity views
are owned by the identity controller and read by the ScopedCredential controller (a
credential's subject is its identity); each kind's Secret index is owned by that kind's
controller and read by the other to refuse a Secret name already in use. Controllers write
only their own parts; the cache itself only answers questions across them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wio.errors import ValidationError
from wio.k8s.client import KubeClient, custom_path
from wio.models.resources import IdentityPolicy
from wio.names import IDENTITY_POLICIES, SCOPED_CREDENTIAL, WORKLOAD_IDENTITY
from wio.policy.reconcile import SecretFacts
from wio.policy.scoped import CredentialFacts
from wio.service.views import ObjectKey, ObjectView, SecretIndex, SecretRecord

log = logging.getLogger(__name__)


@dataclass
class WatchedCache:
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    policies: dict[str, IdentityPolicy] = field(default_factory=dict)
    identities: dict[ObjectKey, ObjectView] = field(default_factory=dict)
    credentials: dict[ObjectKey, ObjectView] = field(default_factory=dict)
    identity_secrets: SecretIndex[SecretFacts] = field(default_factory=SecretIndex)
    credential_secrets: SecretIndex[CredentialFacts] = field(default_factory=SecretIndex)

    async def load(self, kube: KubeClient) -> None:
        """Seed namespaces and policies with one LIST each, before any decision."""
        for body in await kube.list("/api/v1/namespaces"):
            self.observe_namespace(body)
        for body in await kube.list(custom_path(IDENTITY_POLICIES, None)):
            self.observe_policy(body)

    def observe_namespace(self, body: Mapping[str, Any], deleted: bool = False) -> bool:
        """Record a namespace's labels; True when they changed (policy must be re-evaluated)."""
        meta = body.get("metadata") or {}
        name = meta.get("name", "")
        if deleted:
            self.namespace_labels.pop(name, None)
            return False
        labels = dict(meta.get("labels") or {})
        if self.namespace_labels.get(name) == labels:
            return False
        self.namespace_labels[name] = labels
        return True

    def observe_policy(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        name = (body.get("metadata") or {}).get("name", "")
        if deleted:
            self.policies.pop(name, None)
            return
        try:
            self.policies[name] = IdentityPolicy.parse(name, body.get("spec") or {})
        except ValidationError as err:
            log.warning("IdentityPolicy %s ignored: %s", name, err)
            self.policies.pop(name, None)

    def secret_records(self, namespace: str, secret_name: str) -> list[tuple[str, SecretRecord]]:
        """What each kind's index knows of the Secret ``secret_name``: (kind, record)."""
        key = ObjectKey(namespace, secret_name)
        found = []
        for kind, index in (
            (WORKLOAD_IDENTITY, self.identity_secrets),
            (SCOPED_CREDENTIAL, self.credential_secrets),
        ):
            record = index.records.get(key)
            if record is not None:
                found.append((kind, record))
        return found
