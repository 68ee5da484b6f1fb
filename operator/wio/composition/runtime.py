# SPDX-License-Identifier: Apache-2.0
"""Wires one operator instance together from the admin configuration: no globals.

``Runtime.start`` builds the Kubernetes client, loads (or creates) the local signer's state,
builds the named signers, loads the revocation list and what trust bundles are already
published, seeds the watched caches and starts the controllers. ``stop`` undoes it in reverse
order. Every collaborator is handed over at construction; nothing is wired afterwards.

The ``observe_*`` methods are what the Kopf handlers call with each watch event: they route
it to the cache and to the controllers that care.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol

from wio.backends.local import LocalAuthority, LocalJwtSigner
from wio.backends.protocols import JwtSigner, X509Authority
from wio.backends.vault import VaultClient
from wio.clock import Clock
from wio.composition.vault import vault_authority, vault_dynamic_secrets, vault_jwt_signer
from wio.config import AdminConfig, SignerConfig, VaultPkiX509, VaultTransitJwt
from wio.issuing.ca import CAConfig, LocalCA
from wio.issuing.jwt import JwtKeyRing, SigningKey
from wio.issuing.keyring_state import dump_keyring, load_keyring
from wio.k8s.access import ClusterAccess
from wio.k8s.client import KubeClient
from wio.k8s.events import EventRecorder
from wio.k8s.revocations import RevocationStore
from wio.k8s.signer_state import SignerState, SignerStateStore
from wio.k8s.trust_store import TrustConfigMaps
from wio.metrics import Metrics
from wio.models.resources import MAX_JWT_TTL, MAX_TOKEN_TTL
from wio.models.revocation import RevocationList
from wio.service.audit import AuditTrail
from wio.service.cache import WatchedCache
from wio.service.identities import IdentityController
from wio.service.introspection import Introspector
from wio.service.kind import Collaborators
from wio.service.rollover import KeyRollover
from wio.service.scoped import ScopedCredentialController
from wio.service.signers import Signer, SignerSet
from wio.service.trust import PublicDocuments, TrustPublisher
from wio.service.upstream import UpstreamRevoker
from wio.service.workqueue import TokenBucket


class KubeFactory(Protocol):
    """Builds the API client; tests inject one that fails on cue (faults, crashes)."""

    def __call__(self, access: ClusterAccess, *, max_inflight: int) -> KubeClient: ...


@dataclass
class Runtime:
    config: AdminConfig
    kube: KubeClient
    signers: SignerSet
    revocations: RevocationStore
    trust: TrustPublisher
    events: EventRecorder
    cache: WatchedCache
    identities: IdentityController
    scoped: ScopedCredentialController
    metrics: Metrics
    vault_clients: list[VaultClient]
    introspector: Introspector
    rollover: KeyRollover
    upstream: UpstreamRevoker
    local: LocalAuthority
    ready: bool = False

    @classmethod
    async def start(
        cls,
        config: AdminConfig,
        access: ClusterAccess,
        clock: Clock,
        *,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        audit: AuditTrail,
        kube_factory: KubeFactory = KubeClient,
    ) -> Runtime:
        metrics = metrics or Metrics()
        kube = kube_factory(access, max_inflight=config.max_inflight_writes)
        vault_clients: list[VaultClient] = []
        try:
            store = SignerStateStore(
                kube, namespace=config.operator_namespace, name=config.local_ca_secret
            )
            local_x509, local_jwt = await _local_signers(config, store, clock)
            signers = build_signers(config, local_x509, local_jwt, clock, vault_clients)
            revocations = RevocationStore(
                kube,
                namespace=config.operator_namespace,
                name=config.revocation_configmap,
                clock=clock,
                shards=config.revocation_shards,
            )
            await revocations.load()
            trust = TrustPublisher(
                TrustConfigMaps(
                    kube, name=config.trust_configmap, namespaces=config.watch_namespaces
                ),
                signers=signers,
                revocations=revocations,
            )
            await trust.load()
            await signers.trust_bundle()
            events = EventRecorder(kube)
            cache = WatchedCache()
            vault = (
                vault_dynamic_secrets(config.vault, clock, vault_clients)
                if config.vault is not None
                else None
            )
            upstream = UpstreamRevoker(signers, vault, revocations, metrics, clock)
            parts = Collaborators(
                config=config,
                kube=kube,
                signers=signers,
                trust=trust,
                revocations=revocations,
                events=events,
                metrics=metrics,
                clock=clock,
                rng=rng or random.Random(),  # noqa: S311 - rotation jitter, not a secret
                bucket=TokenBucket(config.issuance_rate, config.issuance_burst),
                upstream=upstream,
                cache=cache,
                policy_defaults=config.policy_defaults(),
                audit=audit,
            )
            identities, scoped = build_controllers(parts)
            introspector = build_introspector(
                config, signers, lambda: revocations.current, clock, metrics, audit
            )
            rollover = KeyRollover(
                authority=local_x509,
                jwt=local_jwt,
                store=store,
                signers=signers,
                trust=trust,
                events=events,
                metrics=metrics,
                audit=audit,
                clock=clock,
                publish_delay=config.rollover_publish_delay,
                # A retired JWT key stays published as long as the longest token the API
                # allows: policies can raise the configured maximums up to it.
                jwt_retire_after=max(MAX_JWT_TTL, MAX_TOKEN_TTL) + config.skew,
                on_distrust=(identities.requeue, scoped.requeue),
                untrusted=lambda: identities.untrusted_count() + scoped.untrusted_count(),
            )
            metrics.follow_credentials(
                lambda: chain(identities.credential_timings(), scoped.credential_timings()), clock
            )
            events.start()
            trust.start()
            await cache.load(kube)
            # Identities first: a ScopedCredential's first decision reads its identity's view.
            await identities.start()
            await scoped.start()
            upstream.start()
            rollover.start()
        except BaseException:
            metrics.unfollow_credentials()
            for client in vault_clients:
                client.close()
            await kube.close()
            raise
        runtime = cls(
            config=config,
            kube=kube,
            signers=signers,
            revocations=revocations,
            trust=trust,
            events=events,
            cache=cache,
            identities=identities,
            scoped=scoped,
            metrics=metrics,
            vault_clients=vault_clients,
            introspector=introspector,
            rollover=rollover,
            upstream=upstream,
            local=local_x509,
        )
        runtime.ready = True
        return runtime

    @property
    def documents(self) -> PublicDocuments:
        return self.trust.documents

    @property
    def local_ca(self) -> LocalCA:
        return self.local.ca

    async def stop(self) -> None:
        self.ready = False
        self.metrics.unfollow_credentials()
        await self.rollover.stop()
        await self.upstream.stop()
        await self.scoped.stop()
        await self.identities.stop()
        await self.trust.stop()
        await self.events.stop()
        for client in self.vault_clients:
            client.close()
        await self.kube.close()

    # -- watch events, routed --------------------------------------------------------------------

    def observe_identity(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        self.identities.observe(body, deleted=deleted)
        # After the identity controller has recorded it: ScopedCredentials read its view.
        self.scoped.observe_identity(body, deleted=deleted)

    def observe_credential(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        self.scoped.observe(body, deleted=deleted)

    def observe_secret(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        self.identities.observe_secret(body, deleted=deleted)
        self.scoped.observe_secret(body, deleted=deleted)

    def observe_policy(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        self.cache.observe_policy(body, deleted=deleted)
        self.identities.requeue()
        self.scoped.requeue()

    def observe_namespace(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        if self.cache.observe_namespace(body, deleted=deleted):
            name = (body.get("metadata") or {}).get("name", "")
            self.identities.requeue(name)
            self.scoped.requeue(name)


def build_controllers(
    parts: Collaborators,
) -> tuple[IdentityController, ScopedCredentialController]:
    """The controllers of the two kinds, wired once."""
    scoped = ScopedCredentialController(parts)
    # A deleted identity's ScopedCredentials are revoked before its finalizer lets go.
    identities = IdentityController(parts, dependents=scoped.revoke_for_identity)
    return identities, scoped


def build_introspector(
    config: AdminConfig,
    signers: SignerSet,
    revocations: Callable[[], RevocationList],
    clock: Clock,
    metrics: Metrics,
    audit: AuditTrail,
) -> Introspector:
    """Token introspection, the same on the leader and on every standby."""
    return Introspector(
        issuer=config.jwt_issuer,
        trust_domain=config.trust_domain.name,
        jwks=signers.jwt_public_jwks,
        revocations=revocations,
        clock=clock,
        rate=config.introspection_rate,
        burst=config.introspection_burst,
        on_result=lambda result: metrics.introspections.labels(result).inc(),
        on_refused=metrics.introspection_caller_failed,
        audit=audit,
    )


def ca_config(config: AdminConfig) -> CAConfig:
    # Leaves may live up to a sixth of the CA's life (an IdentityPolicy may allow more than
    # the default maximum); the CA's rotation schedule is built around that bound.
    return CAConfig(
        config.trust_domain,
        lifetime=config.ca_lifetime,
        max_leaf_ttl=config.ca_lifetime / 6,
        skew=config.skew,
    )


async def _local_signers(
    config: AdminConfig, store: SignerStateStore, clock: Clock
) -> tuple[LocalAuthority, LocalJwtSigner]:
    """The local CA and JWT key ring, from their Secret or freshly made (and stored) once."""
    state = await store.load()
    if state is None:
        fresh_ca = LocalCA.bootstrap(ca_config(config), clock.now())
        fresh_ring = JwtKeyRing(SigningKey.generate())
        state = await store.create_or_load(SignerState(fresh_ca.dump(), dump_keyring(fresh_ring)))

    async def save_ring(ring: JwtKeyRing) -> None:
        await store.save_jwt(dump_keyring(ring))

    authority = LocalAuthority(
        LocalCA.load(state.ca, ca_config(config)), name="local", on_change=store.save_ca
    )
    jwt = LocalJwtSigner(load_keyring(state.jwt), name="local", on_change=save_ring)
    await authority.rotate(clock.now())
    await jwt.prune(clock.now())
    return authority, jwt


def build_signers(
    config: AdminConfig,
    local_x509: LocalAuthority,
    local_jwt: LocalJwtSigner,
    clock: Clock,
    vault_clients: list[VaultClient],
) -> SignerSet:
    """Every configured signer by name, around the local CA and key ring given."""
    return SignerSet(
        {
            name: _signer(name, sc, local_x509, local_jwt, config, clock, vault_clients)
            for name, sc in config.signers.items()
        }
    )


def _signer(
    name: str,
    sc: SignerConfig,
    local_x509: LocalAuthority,
    local_jwt: LocalJwtSigner,
    config: AdminConfig,
    clock: Clock,
    vault_clients: list[VaultClient],
) -> Signer:
    x509: X509Authority = local_x509
    if isinstance(sc.x509, VaultPkiX509):
        x509 = vault_authority(name, sc.x509, config, clock, vault_clients)
    jwt: JwtSigner = local_jwt
    if isinstance(sc.jwt, VaultTransitJwt):
        jwt = vault_jwt_signer(name, sc.jwt, clock, vault_clients)
    return Signer(name, x509, jwt)
