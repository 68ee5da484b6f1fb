# SPDX-License-Identifier: Apache-2.0
"""The local signer's state (CA keys, JWT key ring) in a Secret in the operator's namespace.

Created on first start; loaded on every later start, so a restart keeps the same CA and keys.
Two operators racing to create it both end up with the one that won (409 → read it back).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from wio.errors import ApiConflict, ApiNotFound
from wio.k8s.client import KubeClient, secret_path
from wio.names import MANAGED_BY, MANAGER

CA_KEY = "ca-state.json"
JWT_KEY = "jwt-keyring.json"
LABELS = {MANAGED_BY: MANAGER, "app.kubernetes.io/component": "local-signer"}


@dataclass(frozen=True)
class SignerState:
    ca: bytes
    jwt: bytes


class SignerStateStore:
    def __init__(self, kube: KubeClient, *, namespace: str, name: str) -> None:
        self._kube = kube
        self._path = secret_path(namespace, name)
        self._namespace = namespace
        self._name = name

    async def load(self) -> SignerState | None:
        try:
            body = await self._kube.get(self._path)
        except ApiNotFound:
            return None
        data = body.get("data") or {}
        if CA_KEY not in data or JWT_KEY not in data:
            return None
        return SignerState(base64.b64decode(data[CA_KEY]), base64.b64decode(data[JWT_KEY]))

    async def create_or_load(self, fresh: SignerState) -> SignerState:
        """Store ``fresh`` unless a state exists already; return whichever is in force."""
        existing = await self.load()
        if existing is not None:
            return existing
        try:
            await self._kube.create(secret_path(self._namespace), self._body(fresh))
        except ApiConflict:
            existing = await self.load()
            if existing is None:
                raise
            return existing
        return fresh

    async def save_ca(self, ca: bytes) -> None:
        await self.save(ca=ca)

    async def save_jwt(self, jwt: bytes) -> None:
        await self.save(jwt=jwt)

    async def save(
        self,
        *,
        ca: bytes | None = None,
        jwt: bytes | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """One merge patch: new state and the annotations acknowledging what caused it land
        together, so a crash cannot leave a rollover done but unacknowledged, or the reverse."""
        data = {}
        if ca is not None:
            data[CA_KEY] = _b64(ca)
        if jwt is not None:
            data[JWT_KEY] = _b64(jwt)
        patch: dict[str, Any] = {"data": data}
        if annotations:
            patch["metadata"] = {"annotations": dict(annotations)}
        await self._kube.merge_patch(self._path, patch)

    async def watch_metadata(self) -> AsyncIterator[dict[str, Any] | None]:
        """The Secret's metadata (annotations carry rollover requests) on every change;
        None while it does not exist. Its data (the keys) is never fetched here."""
        async for meta in self._kube.watch_metadata(secret_path(self._namespace), self._name):
            yield meta

    def _body(self, state: SignerState) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self._name, "namespace": self._namespace, "labels": LABELS},
            "type": "Opaque",
            "data": {CA_KEY: _b64(state.ca), JWT_KEY: _b64(state.jwt)},
        }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
