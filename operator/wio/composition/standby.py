# SPDX-License-Identifier: Apache-2.0
"""What a replica serves while another one leads: read-only, kept current by watches.

A standby writes nothing. It serves OIDC discovery, the JWKS, the SPIFFE bundle and token
introspection from what the leader stored: the local signer's Secret (re-read whenever it
changes, so a key rollover shows within a watch event) and the revocation list's ConfigMaps
(watched, so a revocation counts here as soon as the leader has stored it). It is ready once
both have been read; until the leader has created the signer's Secret it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from wio.backends.local import LocalAuthority, LocalJwtSigner
from wio.backends.vault import VaultClient
from wio.clock import Clock
from wio.composition.runtime import build_introspector, build_signers, ca_config
from wio.config import AdminConfig
from wio.errors import WioError
from wio.issuing.ca import LocalCA
from wio.issuing.keyring_state import load_keyring
from wio.k8s.access import ClusterAccess
from wio.k8s.client import KubeClient
from wio.k8s.revocations import RevocationMirror
from wio.k8s.signer_state import SignerState, SignerStateStore
from wio.k8s.trust_store import TrustConfigMaps
from wio.metrics import Metrics
from wio.service.audit import AuditTrail
from wio.service.introspection import Introspector
from wio.service.signers import SignerSet
from wio.service.trust import PublicDocuments

log = logging.getLogger(__name__)


class Standby:
    def __init__(
        self,
        config: AdminConfig,
        access: ClusterAccess,
        clock: Clock,
        metrics: Metrics,
        audit: AuditTrail,
    ) -> None:
        self._config = config
        self._audit = audit
        self._clock = clock
        self._metrics = metrics
        # Reads only: a handful of requests in flight is plenty.
        self._kube = KubeClient(access, max_inflight=4)
        self._store = SignerStateStore(
            self._kube, namespace=config.operator_namespace, name=config.local_ca_secret
        )
        self._mirror = RevocationMirror(
            self._kube, namespace=config.operator_namespace, name=config.revocation_configmap
        )
        self._vault_clients: list[VaultClient] = []
        self._signers: SignerSet | None = None
        self._local: tuple[LocalAuthority, LocalJwtSigner] | None = None
        self._documents: PublicDocuments | None = None
        self._introspector: Introspector | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    @property
    def ready(self) -> bool:
        return self._signers is not None and self._mirror.synced.is_set()

    @property
    def documents(self) -> PublicDocuments:
        if self._documents is None:
            raise RuntimeError("standby not ready")
        return self._documents

    @property
    def introspector(self) -> Introspector:
        if self._introspector is None:
            raise RuntimeError("standby not ready")
        return self._introspector

    @property
    def local_ca(self) -> LocalCA | None:
        return self._local[0].ca if self._local is not None else None

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._mirror.follow(), name="wio-standby-revocations"),
            asyncio.create_task(self._follow_signers(), name="wio-standby-signers"),
        ]

    async def stop(self) -> None:
        """Stop following the leader (again: nothing)."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for client in self._vault_clients:
            client.close()
        await self._kube.close()

    async def _follow_signers(self) -> None:
        """Read the signer's Secret now and after every change the leader makes."""
        async for meta in self._store.watch_metadata():
            if meta is None:
                continue  # not created yet: the leader makes it on its first start
            try:
                state = await self._store.load()
            except WioError as err:
                log.warning("standby could not read the signer state: %s", err)
                continue
            if state is not None:
                await self._use(state)

    async def _use(self, state: SignerState) -> None:
        ca = LocalCA.load(state.ca, ca_config(self._config))
        ring = load_keyring(state.jwt)
        if self._local is None:
            authority = LocalAuthority(ca, name="local")
            jwt = LocalJwtSigner(ring, name="local")
            self._local = (authority, jwt)
            signers = build_signers(self._config, authority, jwt, self._clock, self._vault_clients)
            documents = PublicDocuments(signers)
            with contextlib.suppress(WioError):
                # Number bundles after what the leader published, so the sequence a
                # verifier sees does not go back when it reaches another replica.
                for found in await TrustConfigMaps(
                    self._kube,
                    name=self._config.trust_configmap,
                    namespaces=self._config.watch_namespaces,
                ).published():
                    documents.continue_from(found.spiffe_bundle_json)
            self._introspector = build_introspector(
                self._config,
                signers,
                lambda: self._mirror.current,
                self._clock,
                self._metrics,
                self._audit,
            )
            self._documents = documents
            self._signers = signers
            return
        authority, jwt = self._local

        async def keep(_: bytes) -> None:
            return None  # the leader stored it; a standby only follows

        await authority.update(lambda _: ca, keep)
        await jwt.update(lambda _: ring, None)
        if self._signers is not None:
            self._signers.invalidate()
