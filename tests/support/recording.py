# SPDX-License-Identifier: Apache-2.0
"""A recording fake of the Kubernetes API client, and the controllers wired over it.

``RecordingKube`` stands in for ``wio.k8s.client.KubeClient`` (duck-typed: ``apply``,
``merge_patch``, ``delete``, ``get``, ``list``, ``create`` and ``close``). It keeps the objects
it was sent in memory, by path, and answers writes as the API server does: with the object's
metadata, carrying an increasing integer ``resourceVersion`` (the controllers keep it to
recognise the echo of their own writes). Every write that took effect is recorded, in the
order it took effect, as a frozen ``Call``. A test can make the next call of a verb (and path)
fail with a given wio error (``fail_next``), or wait until it is released (``hold``), which
is how races are staged without sleeping.

``Harness`` wires the collaborators as ``wio.composition.runtime`` does, with fakes where
the runtime talks to the world: a ``FakeClock``, a seeded ``random.Random``, the recording
client, one signer named ``default`` over ``FakeAuthority`` and ``FakeJwtSigner``, and the
real ``RevocationStore``, ``TrustPublisher``, ``EventRecorder``, ``Metrics`` and caches over
them. Tests drive the controllers directly (``observe``, ``reconcile``, ``finalize``); no
background loop runs except the Event poster, which ``flush_events`` drains.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography import x509

from tests.support.fakes import DEFAULT_TRUST_DOMAIN, FakeAuthority, FakeJwtSigner
from wio.clock import FakeClock, rfc3339
from wio.composition.runtime import build_controllers
from wio.config import AdminConfig
from wio.errors import ApiConflict, ApiNotFound, WioError
from wio.k8s.client import KubeClient, configmap_path, custom_path
from wio.k8s.events import EventRecorder
from wio.k8s.revocations import DATA_KEY, RevocationStore
from wio.k8s.trust_store import TrustConfigMaps
from wio.metrics import Metrics
from wio.models.revocation import parse_shard
from wio.models.spiffe import TrustDomain
from wio.names import API_VERSION, FINALIZER
from wio.service.audit import AuditTrail
from wio.service.cache import WatchedCache
from wio.service.identities import IdentityController
from wio.service.kind import Collaborators
from wio.service.scoped import ScopedCredentialController
from wio.service.signers import Signer, SignerSet
from wio.service.trust import TrustPublisher
from wio.service.upstream import UpstreamRevoker
from wio.service.workqueue import TokenBucket

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
OPERATOR_NAMESPACE = "wio-system"
REVOCATIONS_CONFIGMAP = "wio-revocations"
#: The harness keeps the revocation list in one shard, so a test reads one object.
REVOCATIONS_PATH = configmap_path(OPERATOR_NAMESPACE, f"{REVOCATIONS_CONFIGMAP}-00")


@dataclass(frozen=True)
class Call:
    """One write that took effect: ``verb`` is apply, merge_patch, delete or create."""

    verb: str
    path: str
    body: Mapping[str, Any] | None = None

    @property
    def is_event(self) -> bool:
        return self.verb == "create" and "/events/" in self.path


@dataclass
class Hold:
    """The next matching call waits here: ``reached`` is set when it arrives, and it goes on
    (or fails, if a failure was scripted for it) once ``release`` is called."""

    verb: str
    path: str | None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


class RecordingKube:
    """An in-memory API server that records every write (see the module docstring)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.closed = False
        self._version = 0
        self._uids = 0
        self._failures: list[tuple[str, str | None, WioError]] = []
        self._holds: list[Hold] = []

    # -- scripting -----------------------------------------------------------------------------

    def fail_next(self, verb: str, path: str | None = None, error: WioError | None = None) -> None:
        """The next ``verb`` call (to ``path``, or to any path) raises ``error`` and changes
        nothing (default: a 409 conflict)."""
        self._failures.append((verb, path, error or ApiConflict(f"{verb} {path}: scripted")))

    def hold(self, verb: str, path: str | None = None) -> Hold:
        """The next ``verb`` call (to ``path``, or to any) waits until released."""
        held = Hold(verb, path)
        self._holds.append(held)
        return held

    def put(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object as if someone else had created it (not recorded as a write)."""
        return copy.deepcopy(self._store(path, copy.deepcopy(dict(body))))

    # -- reading what happened -----------------------------------------------------------------

    def mark(self) -> int:
        """A position in the log: ``since(mark)`` is what happened after it."""
        return len(self.calls)

    def since(self, mark: int = 0) -> list[Call]:
        return self.calls[mark:]

    def writes(self, mark: int = 0) -> list[Call]:
        """API writes since ``mark``, Events left out (they are best-effort and posted later)."""
        return [c for c in self.since(mark) if not c.is_event]

    def events(self, mark: int = 0) -> list[Mapping[str, Any]]:
        """The Events posted since ``mark`` (after ``Harness.flush_events``)."""
        return [c.body or {} for c in self.since(mark) if c.is_event]

    # -- the KubeClient surface ----------------------------------------------------------------

    async def get(self, path: str) -> dict[str, Any]:
        await self._arrive("get", path)
        found = self.objects.get(path)
        if found is None:
            raise ApiNotFound(f"GET {path}: not found", status=404)
        return copy.deepcopy(found)

    async def list(
        self, path: str, *, label_selector: str | None = None, metadata_only: bool = False
    ) -> list[dict[str, Any]]:
        await self._arrive("list", path)
        items = []
        for stored_path, body in sorted(self.objects.items()):
            collection = stored_path.rsplit("/", 1)[0]
            if path not in (collection, _cluster_wide(collection)):
                continue
            if not _selected(body, label_selector):
                continue
            found = copy.deepcopy(body)
            items.append({"metadata": found["metadata"]} if metadata_only else found)
        return items

    async def apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply with force: creates or replaces what wio manages; a
        ``metadata.resourceVersion`` in the body is a precondition, as on the API server."""
        await self._arrive("apply", path)
        self._precondition(path, body)
        stored = self._store(path, copy.deepcopy(dict(body)))
        self.calls.append(Call("apply", path, copy.deepcopy(dict(body))))
        return _metadata_answer(stored)

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """RFC 7386 merge patch; ``…/status`` patches only the status of the object."""
        await self._arrive("merge_patch", path)
        status_only = path.endswith("/status")
        target = path.removesuffix("/status")
        current = self.objects.get(target)
        if current is None:
            raise ApiNotFound(f"PATCH {path}: not found", status=404)
        self._precondition(target, body)
        patch = copy.deepcopy(dict(body))
        if status_only:
            patch = {"status": patch.get("status")}
        merged = _merge(current, patch)
        stored = self._store(target, merged)
        self.calls.append(Call("merge_patch", path, copy.deepcopy(dict(body))))
        return _metadata_answer(stored)

    async def delete(self, path: str, *, missing_ok: bool = True, uid: str | None = None) -> None:
        """Delete; with ``uid``, only that object (409 when the name holds another)."""
        await self._arrive("delete", path)
        current = self.objects.get(path)
        if current is not None and uid is not None and current["metadata"].get("uid") != uid:
            raise ApiConflict(f"DELETE {path}: the UID precondition failed")
        if self.objects.pop(path, None) is None and not missing_ok:
            raise ApiNotFound(f"DELETE {path}: not found", status=404)
        self.calls.append(Call("delete", path))

    async def create(
        self, path: str, body: Mapping[str, Any], *, metadata_only: bool = False
    ) -> dict[str, Any]:
        """POST to the collection ``path``; recorded under the new object's own path."""
        name = (body.get("metadata") or {}).get("name", "")
        target = f"{path}/{name}"
        await self._arrive("create", target)
        if target in self.objects:
            raise ApiConflict(f"POST {path}: {name} already exists")
        stored = self._store(target, copy.deepcopy(dict(body)))
        self.calls.append(Call("create", target, copy.deepcopy(dict(body))))
        return _metadata_answer(stored) if metadata_only else copy.deepcopy(stored)

    async def close(self) -> None:
        self.closed = True

    # -- internals -----------------------------------------------------------------------------

    async def _arrive(self, verb: str, path: str) -> None:
        held = next((h for h in self._holds if _matches(h.verb, h.path, verb, path)), None)
        if held is not None:
            self._holds.remove(held)
            held.reached.set()
            await held.released.wait()
        for index, (want_verb, want_path, error) in enumerate(self._failures):
            if _matches(want_verb, want_path, verb, path):
                del self._failures[index]
                raise error

    def _precondition(self, path: str, body: Mapping[str, Any]) -> None:
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is None:
            return
        current = self.objects.get(path)
        if current is None or current["metadata"].get("resourceVersion") != wanted:
            raise ApiConflict(f"PATCH {path}: the object has been modified")

    def _store(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        previous = self.objects.get(path)
        meta = body.setdefault("metadata", {})
        old_meta = (previous or {}).get("metadata") or {}
        if not meta.get("uid"):
            self._uids += 1
            meta["uid"] = old_meta.get("uid") or f"uid-{self._uids}"
        self._version += 1
        meta["resourceVersion"] = str(self._version)
        self.objects[path] = body
        return body


def _matches(want_verb: str, want_path: str | None, verb: str, path: str) -> bool:
    return want_verb == verb and want_path in (None, path)


def _cluster_wide(collection: str) -> str:
    """``/api/v1/namespaces/ns/secrets`` → ``/api/v1/secrets`` (and the same for custom)."""
    parts = collection.split("/")
    if "namespaces" in parts[:-1]:
        at = parts.index("namespaces")
        return "/".join(parts[:at] + parts[at + 2 :])
    return collection


def _selected(body: Mapping[str, Any], selector: str | None) -> bool:
    """Equality (``k=v``, ``k!=v``) and existence (``k``, ``!k``) terms, all of them."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            ok = labels.get(key) != value
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            ok = labels.get(key) == value
        elif term.startswith("!"):
            ok = term[1:] not in labels
        else:
            ok = term in labels
        if not ok:
            return False
    return True


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge(merged.get(key), value)
    return merged


def _metadata_answer(stored: Mapping[str, Any]) -> dict[str, Any]:
    """What wio asks writes to answer with: the object's metadata only."""
    return {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": copy.deepcopy(stored.get("metadata") or {}),
    }


# -- reading what the controllers wrote ----------------------------------------------------------


def conditions(status: Mapping[str, Any] | None) -> dict[str, tuple[str, str]]:
    """``{type: (status, reason)}`` of a status (or of a status patch's ``status``)."""
    found = (status or {}).get("conditions") or []
    return {c["type"]: (c["status"], c["reason"]) for c in found}


def condition_message(status: Mapping[str, Any] | None, kind: str) -> str:
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("message", ""))
    raise AssertionError(f"no {kind} condition in {status!r}")


def secret_data(call: Call, key: str) -> bytes:
    """One data key of a recorded Secret apply, decoded."""
    body = call.body or {}
    return base64.b64decode((body.get("data") or {})[key])


def leaf_certificate(call: Call) -> x509.Certificate:
    """The first certificate of ``tls.crt`` in a recorded Secret apply."""
    return x509.load_pem_x509_certificate(secret_data(call, "tls.crt"))


def uri_sans(cert: x509.Certificate) -> list[str]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(sans.get_values_for_type(x509.UniformResourceIdentifier))


def revoked_ids(call: Call, kind: str) -> set[str]:
    """The IDs of ``kind`` in a recorded apply of the revocation list's shard."""
    raw = ((call.body or {}).get("data") or {})[DATA_KEY]
    return {e.id for e in parse_shard(raw.encode()) if e.kind == kind}


@dataclass(frozen=True)
class Outcome:
    """What one step did: its API writes (Events apart), in order, and the Events it posted."""

    writes: list[Call]
    events: list[Mapping[str, Any]]

    @property
    def verbs_and_paths(self) -> list[tuple[str, str]]:
        return [(c.verb, c.path) for c in self.writes]

    @property
    def event_reasons(self) -> list[str]:
        return [str(e.get("reason")) for e in self.events]

    @property
    def status(self) -> Mapping[str, Any] | None:
        """The ``status`` of the last status patch, None when status was not written."""
        patches = [c for c in self.writes if c.path.endswith("/status")]
        return (patches[-1].body or {}).get("status") if patches else None

    def secret_write(self, path: str) -> Call:
        """The write that put a Secret's content: its creation, or an apply over it."""
        return next(
            c for c in reversed(self.writes) if c.verb in ("create", "apply") and c.path == path
        )

    def write(self, verb: str, path: str) -> Call:
        """The last write of ``verb`` to ``path``."""
        found = [c for c in self.writes if (c.verb, c.path) == (verb, path)]
        assert found, f"no {verb} of {path} among {self.verbs_and_paths}"
        return found[-1]


# -- object bodies -------------------------------------------------------------------------------


def namespace_body(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/metadata.name": name, **(labels or {})},
        }
    }


def policy_body(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "IdentityPolicy",
        "metadata": {"name": name},
        "spec": dict(spec),
    }


def object_body(
    kind: str,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    *,
    status: Mapping[str, Any] | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    """A WorkloadIdentity or ScopedCredential as Kopf sees it once our finalizer is on it."""
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "generation": generation,
            "finalizers": [FINALIZER],
        },
        "spec": dict(spec),
    }
    if status is not None:
        body["status"] = dict(status)
    return body


# -- the wiring ----------------------------------------------------------------------------------


@dataclass
class Harness:
    """Both controllers over one ``Collaborators``, as the runtime wires them, with fakes."""

    clock: FakeClock
    kube: RecordingKube
    authority: FakeAuthority
    jwt: FakeJwtSigner
    parts: Collaborators
    identities: IdentityController
    scoped: ScopedCredentialController

    @classmethod
    async def start(
        cls,
        *,
        clock: FakeClock | None = None,
        kube: RecordingKube | None = None,
        authority: FakeAuthority | None = None,
        jwt: FakeJwtSigner | None = None,
        trust_domain: TrustDomain = DEFAULT_TRUST_DOMAIN,
        seed: int = 7,
    ) -> Harness:
        clock = clock or FakeClock(T0)
        kube = kube or RecordingKube()
        authority = authority or FakeAuthority(clock=clock)
        jwt = jwt or FakeJwtSigner()
        api = cast(KubeClient, kube)
        config = AdminConfig(
            trust_domain=trust_domain,
            jwt_issuer="https://wio.example.org",
            operator_namespace=OPERATOR_NAMESPACE,
            revocation_configmap=REVOCATIONS_CONFIGMAP,
            revocation_shards=1,
        )
        metrics = Metrics()
        signers = SignerSet({"default": Signer("default", authority, jwt)})
        revocations = RevocationStore(
            api, namespace=OPERATOR_NAMESPACE, name=REVOCATIONS_CONFIGMAP, clock=clock, shards=1
        )
        await revocations.load()
        trust = TrustPublisher(
            TrustConfigMaps(api, name=config.trust_configmap),
            signers=signers,
            revocations=revocations,
        )
        await signers.trust_bundle()
        await signers.jwt_public_jwks()
        events = EventRecorder(api)
        cache = WatchedCache()
        # As after the controllers' start-up LIST: a Secret not in the index does not exist.
        cache.identity_secrets.synced = True
        cache.credential_secrets.synced = True
        parts = Collaborators(
            config=config,
            kube=api,
            signers=signers,
            trust=trust,
            revocations=revocations,
            events=events,
            metrics=metrics,
            clock=clock,
            rng=random.Random(seed),  # noqa: S311 - rotation jitter, not a secret
            bucket=TokenBucket(1_000_000.0, 1_000_000),
            upstream=UpstreamRevoker(signers, None, revocations, metrics, clock),
            cache=cache,
            policy_defaults=config.policy_defaults(),
            audit=AuditTrail("test-replica", clock),
        )
        identities, scoped = build_controllers(parts)
        events.start()
        return cls(clock, kube, authority, jwt, parts, identities, scoped)

    async def restart(self) -> Harness:
        """A new operator process over the same cluster, clock and signers (after a crash)."""
        await self.close()
        return await Harness.start(
            clock=self.clock, kube=self.kube, authority=self.authority, jwt=self.jwt
        )

    async def close(self) -> None:
        await self.parts.events.stop()
        for controller in (self.identities, self.scoped):
            await controller.queue.stop()
            await controller.scheduler.stop()

    async def flush_events(self) -> None:
        """Wait until every Event recorded so far has been posted."""
        await self.parts.events.stop()
        self.parts.events.start()

    async def step(self, action: Awaitable[None]) -> Outcome:
        """Run ``action`` and return what it wrote and which Events it posted."""
        await self.flush_events()
        mark = self.kube.mark()
        await action
        await self.flush_events()
        return Outcome(self.kube.writes(mark), self.kube.events(mark))

    # -- seeding the watched state -------------------------------------------------------------

    def observe_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        self.parts.cache.observe_namespace(namespace_body(name, labels))

    def observe_policy(self, name: str, spec: Mapping[str, Any], deleted: bool = False) -> None:
        self.parts.cache.observe_policy(policy_body(name, spec), deleted=deleted)

    def add_identity(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a WorkloadIdentity in the API and deliver its watch event, as Kopf would."""
        meta = body["metadata"]
        stored = self.kube.put(
            custom_path(self.identities.plural, meta["namespace"], meta["name"]), body
        )
        self.identities.observe(stored)
        self.scoped.observe_identity(stored)
        return stored

    def add_credential(self, body: Mapping[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        stored = self.kube.put(
            custom_path(self.scoped.plural, meta["namespace"], meta["name"]), body
        )
        self.scoped.observe(stored)
        return stored

    async def deleting(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        """The object as Kopf hands it to the finalizer: as stored, with a deletion time."""
        body = await self.kube.get(custom_path(plural, namespace, name))
        body["metadata"]["deletionTimestamp"] = rfc3339(self.clock.now())
        return body


@asynccontextmanager
async def running(**options: Any) -> AsyncIterator[Harness]:
    """A started ``Harness``, closed afterwards."""
    harness = await Harness.start(**options)
    try:
        yield harness
    finally:
        await harness.close()


# -- tables of situations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Situation:
    """One row of a controller's table: how to arrange it, and what one action then writes
    (verbs and paths, in order), says in its last status patch and posts as Events."""

    arrange: Callable[[Harness], Awaitable[Harness]]
    writes: list[tuple[str, str]]
    #: The conditions of the last status patch; None: status is not written at all.
    conditions: Mapping[str, tuple[str, str]] | None
    events: list[str]
    #: The action (the table's default, a reconcile, when None).
    act: Callable[[Harness], Awaitable[None]] | None = None
    #: Further checks of what a user would see.
    then: Callable[[Harness, Outcome], Awaitable[None] | None] | None = None


async def play(situation: Situation, default_act: Callable[[Harness], Awaitable[None]]) -> None:
    """Arrange the situation (perhaps in a new process, after a crash), act, and check."""
    async with running() as first:
        h = await situation.arrange(first)
        try:
            out = await h.step((situation.act or default_act)(h))
            assert out.verbs_and_paths == situation.writes
            if situation.conditions is None:
                assert out.status is None
            else:
                assert conditions(out.status) == situation.conditions
            assert out.event_reasons == situation.events
            if situation.then is not None:
                checked = situation.then(h, out)
                if checked is not None:
                    await checked
        finally:
            await h.close()
