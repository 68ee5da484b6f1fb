# SPDX-License-Identifier: Apache-2.0
"""What a kind of credential object supplies to the controller core, and the values they share.

``KindHooks`` lists the gaps ``wio.service.controller.CredentialController`` leaves for each
kind (how it parses, gates, decides, issues and revokes); ``Collaborators`` is what every
controller acts through; ``Blocked`` and ``Live`` are the values the hooks return.
"""

from __future__ import annotations

import abc
import datetime as dt
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from wio.clock import Clock, parse_rfc3339, rfc3339
from wio.config import AdminConfig
from wio.k8s.client import KubeClient
from wio.k8s.events import EventRecorder
from wio.k8s.revocations import RevocationStore
from wio.metrics import CredentialTiming, Metrics
from wio.models.limits import PolicyDefaults
from wio.policy.rotation import ReissueReason
from wio.service.audit import AuditTrail
from wio.service.cache import WatchedCache
from wio.service.signers import SignerSet
from wio.service.status import condition
from wio.service.trust import TrustPublisher
from wio.service.upstream import UpstreamRevoker
from wio.service.views import ObjectKey, ObjectView
from wio.service.workqueue import TokenBucket


class CredentialSpec(Protocol):
    """What the core reads of every kind's parsed spec."""

    @property
    def secret_name(self) -> str: ...


SpecT = TypeVar("SpecT", bound=CredentialSpec)
SubjectT = TypeVar("SubjectT")
StateT = TypeVar("StateT")
FactsT = TypeVar("FactsT")


@dataclass(frozen=True)
class Blocked:
    """Why nothing can be issued right now (a condition reason and message)."""

    reason: str
    message: str


@dataclass(frozen=True)
class Live:
    """One credential an object may still have in use, to be listed when it is revoked."""

    kind: str  # x509 | jwt | token | lease: the revocation list's entry kind
    id: str  # serial (hex), jti or lease ID
    expires_at: dt.datetime
    key_fingerprint: str | None = None
    signer: str | None = None  # the signer that issued a certificate (upstream revocation)


#: Earlier credentials kept in ``status.retiredCredentials`` for revocation; beyond this the
#: oldest (closest to expiring on their own) are dropped.
MAX_RETIRED = 32


def retired_credentials(status: Mapping[str, Any], now: dt.datetime) -> list[Live]:
    """The earlier generations ``status.retiredCredentials`` records, while they are valid."""
    found = []
    for item in status.get("retiredCredentials") or ():
        if not isinstance(item, Mapping):
            continue
        expires = parse_rfc3339(item.get("expiresAt"))
        kind, id_ = item.get("kind"), item.get("id")
        if isinstance(kind, str) and isinstance(id_, str) and expires is not None and expires > now:
            found.append(Live(kind, id_, expires))
    return found


def retired_status(items: Sequence[Live], now: dt.datetime) -> list[dict[str, str]] | None:
    """``status.retiredCredentials`` for ``items``: the valid ones, latest-expiring first, at
    most ``MAX_RETIRED``, each once (None removes the field)."""
    unique = {(i.kind, i.id): i for i in items if i.expires_at > now}
    kept = sorted(unique.values(), key=lambda i: i.expires_at, reverse=True)[:MAX_RETIRED]
    return [{"kind": i.kind, "id": i.id, "expiresAt": rfc3339(i.expires_at)} for i in kept] or None


@dataclass(frozen=True)
class Collaborators:
    """What every controller acts through; built once by the composition root."""

    config: AdminConfig
    kube: KubeClient
    signers: SignerSet
    trust: TrustPublisher
    revocations: RevocationStore
    events: EventRecorder
    metrics: Metrics
    clock: Clock
    rng: random.Random
    #: One issuance rate limit for the whole operator, shared by every kind.
    bucket: TokenBucket
    #: Revocation at the source (Vault PKI, Vault leases), retried until it is confirmed.
    upstream: UpstreamRevoker
    cache: WatchedCache
    #: The limits policy applies where no IdentityPolicy sets them.
    policy_defaults: PolicyDefaults
    #: The hash-chained audit stream of this replica.
    audit: AuditTrail


class KindHooks(abc.ABC, Generic[SpecT, SubjectT, StateT, FactsT]):
    """The gaps in the lifecycle that each kind fills (abstract) or may fill (defaults)."""

    @abc.abstractmethod
    def parse(self, view: ObjectView) -> SpecT:
        """The validated spec; raises ``ValidationError`` naming the field."""

    @abc.abstractmethod
    def default_secret_name(self, name: str) -> str:
        """The Secret name an object called ``name`` gets when its spec names none."""

    @abc.abstractmethod
    def gate(self, view: ObjectView, spec: SpecT) -> SubjectT | Blocked:
        """The subject to issue for, or why nothing can be issued yet."""

    @abc.abstractmethod
    def policy(self, view: ObjectView, spec: SpecT, subject: SubjectT) -> str | None:
        """The denial message naming the field, or None when allowed."""

    @abc.abstractmethod
    def gather(self, view: ObjectView, spec: SpecT, subject: SubjectT, now: dt.datetime) -> StateT:
        """What the reissue chain reads: status, the Secret's facts, the signers' keys."""

    @abc.abstractmethod
    def chain(self, state: StateT) -> ReissueReason | None: ...

    @abc.abstractmethod
    def next_due(self, state: StateT) -> dt.datetime | None: ...

    @abc.abstractmethod
    async def act(
        self, view: ObjectView, spec: SpecT, subject: SubjectT, state: StateT, reason: ReissueReason
    ) -> None:
        """Issue, adopt, refresh or renew; raises a ``WioError`` on failure."""

    @abc.abstractmethod
    def judge_secret(self, owner: str, body: Mapping[str, Any]) -> FactsT:
        """The facts of one of this kind's Secrets, as the watch delivered it."""

    @abc.abstractmethod
    def issued_before(self, view: ObjectView) -> bool:
        """Status records a credential (so a new one is a rotation, not a first issuance)."""

    @abc.abstractmethod
    def valid_until(self, view: ObjectView) -> dt.datetime | None: ...

    @abc.abstractmethod
    def failure_labels(self, view: ObjectView, spec: SpecT) -> tuple[str, str]:
        """(signer, source) metric labels of a failed issuance."""

    def recorded_credentials(self, view: ObjectView, now: dt.datetime) -> list[Live]:
        """The valid credentials status records as current (to retire when replaced);
        none by default (a kind that tracks its generations itself, as Vault leases do)."""
        return []

    @abc.abstractmethod
    def live_credentials(self, view: ObjectView, now: dt.datetime) -> list[Live]:
        """Every credential this object may still have live (status and its Secret)."""

    @abc.abstractmethod
    def subject_of(self, view: ObjectView) -> str:
        """The SPIFFE ID this object's credentials name, from spec and namespace (never from
        status), for the revocation list; empty when it can no longer be known."""

    @abc.abstractmethod
    def revocation_report(
        self, view: ObjectView, subject: str, live: Sequence[Live], pending: set[str]
    ) -> tuple[str, tuple[str, str]]:
        """What was revoked of ``subject`` (``subject_of``, empty when unknown), for the Event
        (the core adds what became of the Secret); and the metric labels."""

    def facts_from_metadata(self, owner: str, annotations: Mapping[str, str]) -> FactsT | None:
        """What wio's own annotations say a Secret holds, for a kind that lists its Secrets
        by metadata only at start-up; None leaves it to the watch, which delivers content."""
        return None

    def urgency(self, body: Mapping[str, Any]) -> str:
        """Sort key of the start-up pass: the most urgent objects are looked at first."""
        return ""

    def on_settled(self, view: ObjectView, state: StateT) -> None:
        """Nothing was issued; the credential is valid."""

    @abc.abstractmethod
    def timings(self, view: ObjectView) -> Iterable[CredentialTiming]:
        """The credentials ``view`` holds, as its status says (for the metrics)."""

    def on_observed(self, view: ObjectView) -> None:
        """A watch event recorded ``view``."""

    def on_forget(self, key: ObjectKey) -> None:
        """The object is gone from the cache."""

    async def before_revoke(self, view: ObjectView, reason: str) -> None:
        """The object's credential is being revoked (``reason``: deleted, or its policy
        withdrawn): revoke what was issued on its behalf first."""


def timing_of(
    view: ObjectView, kind: str, expires_field: str, renews_field: str
) -> CredentialTiming | None:
    """One credential's times from ``view``'s status fields; None when it holds none."""
    expires = parse_rfc3339(view.status.get(expires_field))
    if expires is None:
        return None
    ready = (condition(view.status, "Ready") or {}).get("status") == "True"
    return CredentialTiming(
        kind,
        view.key.namespace,
        view.key.name,
        expires,
        parse_rfc3339(view.status.get(renews_field)),
        ready,
    )
