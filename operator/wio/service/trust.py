# SPDX-License-Identifier: Apache-2.0
"""Trust distribution: one ConfigMap in every namespace that holds identities.

It carries ``ca.crt`` (the PEM trust bundle), ``bundle.spiffe.json`` (the SPIFFE bundle),
``jwks.json`` (the JWT keys) and ``revocations.json`` (that namespace's revocations only).
One background task publishes: callers only mark namespaces or content as stale, so a burst
of issuances or revocations costs one write per namespace, not one per event. The SPIFFE
bundle's ``spiffe_sequence`` only grows, across restarts too: it continues from the highest
sequence already published.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

from wio.errors import ApiNotFound, ApiRejected, NameTaken, WioError
from wio.issuing.bundle import SpiffeBundle, build_spiffe_bundle, oidc_jwks, pem_bundle
from wio.k8s.revocations import RevocationStore
from wio.k8s.trust_store import TrustConfigMaps
from wio.service.signers import SignerSet

log = logging.getLogger(__name__)
# Coalesce bursts: wait this long after the first change before publishing, so a run of
# revocations or issuances costs one ConfigMap write per namespace, not one each. The durable
# revocation list in the operator's namespace is written before a finalizer lets go; this is
# only the fan-out, and verifiers poll it far less often than twice a second.
DEBOUNCE_SECONDS = 0.5
# At most this long when the last pass wrote a lot: one second per WRITTEN_BYTES_PER_SECOND.
MAX_DEBOUNCE_SECONDS = 10.0
WRITTEN_BYTES_PER_SECOND = 100_000
# How often the signers' bundles and keys are re-read for changes wio was not told about.
RECHECK_SECONDS = 60.0


class PublicDocuments:
    """The trust documents anyone may read, built from the signers: the SPIFFE bundle and
    the JWKS. Every replica serves them; the leader also publishes them in ConfigMaps."""

    def __init__(self, signers: SignerSet) -> None:
        self._signers = signers
        self._previous: SpiffeBundle | None = None
        self._built_from: tuple[list[Any], list[Any]] | None = None

    def continue_from(self, published_json: str | None) -> None:
        """Number the next bundle after one already published (its sequence only grows,
        across restarts and from one replica to the next)."""
        try:
            published = SpiffeBundle.from_json(published_json) if published_json else None
        except WioError:
            return
        if published is not None and (
            self._previous is None or published.sequence > self._previous.sequence
        ):
            self._previous = published

    async def spiffe_bundle_json(self) -> bytes:
        return (await self._spiffe_bundle()).to_json()

    async def jwks_json(self) -> bytes:
        return json.dumps(oidc_jwks(await self._signers.jwt_public_jwks()), sort_keys=True).encode()

    async def _spiffe_bundle(self) -> SpiffeBundle:
        roots = await self._signers.trust_bundle()
        jwks = await self._signers.jwt_public_jwks()
        # Every issuance puts the bundle into its Secret: rebuild it only when the signers
        # handed out new lists (they cache theirs), not once per credential.
        built_from = self._built_from
        if (
            self._previous is not None
            and built_from
            and built_from[0] is roots
            and built_from[1] is jwks
        ):
            return self._previous
        self._previous = build_spiffe_bundle(roots, jwks, previous=self._previous)
        self._built_from = (roots, jwks)
        return self._previous


class TrustPublisher:
    def __init__(
        self, store: TrustConfigMaps, *, signers: SignerSet, revocations: RevocationStore
    ) -> None:
        self._store = store
        self._signers = signers
        self._revocations = revocations
        self._published: dict[str, str] = {}  # namespace -> content hash
        self._wanted: set[str] = set()
        #: Namespaces whose ConfigMap of that name is someone else's (looked at again only
        #: after a restart).
        self.refused: set[str] = set()
        self.documents = PublicDocuments(signers)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.publishes = 0
        self._pause = 0.0  # seconds the next pass waits, from what the last one wrote

    async def load(self) -> None:
        """Learn what is already published, so a restart rewrites nothing that is current."""
        for found in await self._store.published():
            self._wanted.add(found.namespace)
            self._published[found.namespace] = found.content_hash
            self.documents.continue_from(found.spiffe_bundle_json)

    def ensure(self, namespace: str) -> None:
        """``namespace`` holds identities: publish there if it is not current."""
        if namespace not in self._wanted and namespace not in self.refused:
            self._wanted.add(namespace)
            self._wake.set()

    def invalidate(self) -> None:
        """The CA or keys changed: read the signers again and republish everywhere."""
        self._signers.invalidate()
        self._wake.set()

    def revocations_changed(self) -> None:
        """The revocation list changed: republish it (the signers are not read again)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wio-trust")
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _shared_content(self) -> dict[str, bytes]:
        """What every namespace's ConfigMap carries alike: the bundles and keys."""
        return {
            "ca_bundle_pem": pem_bundle(await self._signers.trust_bundle()),
            "spiffe_bundle_json": await self.documents.spiffe_bundle_json(),
            "jwks_json": await self.documents.jwks_json(),
        }

    async def _run(self) -> None:
        while True:
            # Also look again now and then: an upstream CA or a Transit key can change without
            # telling wio. Publishing compares digests, so an unchanged bundle costs no write.
            try:
                await asyncio.wait_for(self._wake.wait(), RECHECK_SECONDS)
            except TimeoutError:
                self._signers.invalidate()
            # Longer after a pass that wrote much (a namespace's list grows during a mass
            # revocation): rewriting a large ConfigMap twice a second costs the API server
            # far more than verifiers gain from it.
            await asyncio.sleep(max(DEBOUNCE_SECONDS, min(MAX_DEBOUNCE_SECONDS, self._pause)))
            self._wake.clear()
            try:
                await self.publish_now()
            except WioError as err:
                log.warning("publishing trust bundles failed, will retry: %s", err)
                await asyncio.sleep(2.0)
                self._wake.set()

    async def publish_now(self) -> None:
        shared = await self._shared_content()
        canonical = json.dumps(
            {k: v.decode() for k, v in shared.items()}, sort_keys=True, separators=(",", ":")
        )
        shared_digest = hashlib.sha256(canonical.encode()).digest()
        revocations = self._revocations.current
        written = 0
        for namespace in sorted(self._wanted):
            # Each namespace gets only its own revocations: verifiers there check its
            # workloads' credentials, and no tenant reads another's SPIFFE IDs or serials.
            listed = revocations.published_json(namespace)
            digest = hashlib.sha256(shared_digest + listed).hexdigest()[:16]
            if self._published.get(namespace) == digest:
                continue
            try:
                await self._store.write(namespace, {**shared, "revocations_json": listed}, digest)
            except NameTaken as err:
                log.warning("no trust bundle for namespace %s: %s", namespace, err)
                self._wanted.discard(namespace)
                self.refused.add(namespace)
                continue
            except (ApiNotFound, ApiRejected) as err:
                # A namespace being deleted refuses new objects; it needs no bundle any more.
                log.info("no trust bundle for namespace %s: %s", namespace, err)
                self._wanted.discard(namespace)
                continue
            self._published[namespace] = digest
            self.publishes += 1
            written += len(listed)
        self._pause = written / WRITTEN_BYTES_PER_SECOND
