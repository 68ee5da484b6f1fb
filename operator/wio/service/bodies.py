# SPDX-License-Identifier: Apache-2.0
"""Pure builders of the Secrets wio writes, and the owner they belong to.

Build, then apply: these functions only assemble dictionaries; the controllers send them
with server-side apply. What goes into the data and annotations is each kind's codec
(``wio.service.identity_secret``, ``wio.service.credential_secret``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wio.names import API_VERSION, MANAGED_BY, MANAGER


@dataclass(frozen=True)
class Owner:
    """The custom resource a Secret belongs to (for the ownerReference, labels and Events)."""

    kind: str
    namespace: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def event_reference(self) -> dict[str, str]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


def secret_manifest(
    owner: Owner,
    secret_name: str,
    data: Mapping[str, bytes],
    annotations: Mapping[str, str],
    owner_label: str,
    *,
    secret_type: str = "kubernetes.io/tls",  # noqa: S107 - a Secret type
) -> dict[str, Any]:
    """A credential Secret: labelled as wio's and its owner's, owned by the owner."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name,
            "namespace": owner.namespace,
            "labels": {MANAGED_BY: MANAGER, owner_label: owner.name},
            "annotations": dict(annotations),
            "ownerReferences": [owner.reference()],
        },
        "type": secret_type,
        "data": {k: base64.b64encode(v).decode("ascii") for k, v in data.items()},
    }
