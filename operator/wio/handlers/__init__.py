# SPDX-License-Identifier: Apache-2.0
"""The Kopf layer: the only code that imports Kopf. Handlers parse, call the service, return.

Handlers are registered on a registry built per operator instance (no module-level registry),
each with an explicit ``id=``. Watch events only update the service's views and queue work;
the service's own workers and scheduler do the rest. Deletion runs through one finalizer,
named after our API group. wio's exceptions become Kopf's in exactly one place,
``_translated``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import kopf

from wio.composition.runtime import Runtime
from wio.errors import PermanentError, RetryableError
from wio.k8s.access import ClusterAccess
from wio.names import (
    FINALIZER,
    GROUP,
    IDENTITY_POLICIES,
    MANAGED_BY,
    MANAGER,
    SCOPED_CREDENTIALS,
    VERSION,
    WORKLOAD_IDENTITIES,
)

log = logging.getLogger(__name__)
# Kopf's connections: one long-lived stream per watched kind (five) plus room for its
# finalizer patches (issuance waits for them), which beyond that queue for a connection
# rather than opening more.
KOPF_CONNECTIONS = 48


class _NoDiffBase(kopf.DiffBaseStorage):
    """Kopf keeps a copy of each object's last-handled spec to diff on updates; wio has no
    update handlers (it compares spec hashes itself), so storing it would be one more API
    write per object for nothing."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        # Kopf deep-copies every event's body to build an essence nobody here reads.
        return kopf.BodyEssence()

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """wio's exception tree → Kopf's retry semantics, in one place (ARCHITECTURE.md §8)."""
    try:
        yield
    except RetryableError as err:
        raise kopf.TemporaryError(str(err), delay=err.retry_after or 5.0) from err
    except PermanentError as err:
        raise kopf.PermanentError(str(err)) from err


def build_registry(
    start_runtime: Callable[[], Awaitable[Runtime]], access: ClusterAccess
) -> kopf.OperatorRegistry:
    """A registry with every wio handler; ``start_runtime`` builds the service at startup."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(id="wio-startup", registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # Our finalizer, named after our API group.
        settings.persistence.finalizer = FINALIZER
        settings.persistence.diffbase_storage = _NoDiffBase()
        # wio posts its own Events with messages it controls; Kopf's per-handler Events would
        # be extra API writes with nothing for users in them.
        settings.posting.enabled = False
        # Watch only wio's Secrets: the API server filters, so unrelated Secrets cost nothing.
        settings.watching.label_selectors["v1", "secrets"] = f"{MANAGED_BY}={MANAGER}"
        # List in pages: at ten thousand identities an unpaged Secret list is tens of MiB.
        settings.watching.chunk_size = 500
        # Watches reconnect on their own well before typical proxies drop idle streams.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        # Kopf keeps a worker task per object until it has been idle this long (default 5 s);
        # in an issuance storm of ten thousand that is thousands of idle workers holding their
        # last body. The next event simply starts a new one.
        settings.queueing.idle_timeout = 1.0
        # Single replica for now: no peering objects to create or watch.
        settings.peering.standalone = True
        memo.runtime = await start_runtime()

    @kopf.on.cleanup(id="wio-cleanup", registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime | None = getattr(memo, "runtime", None)
        if runtime is not None:
            await runtime.stop()

    @kopf.on.login(id="wio-login", registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        # Kopf's own session has no connection limit: in an issuance burst it opens one TLS
        # connection per concurrent finalizer patch and keeps them all alive, over a hundred
        # at ~0.3 MiB each. A bounded pool holds the watch streams and a few writes.
        token = access.bearer_token()
        headers = {"User-Agent": access.user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=access.ssl_context(), limit=KOPF_CONNECTIONS),
            headers=headers,
        )
        return kopf.AiohttpSession(
            server=access.server, default_namespace=access.namespace, aiohttp_session=session
        )

    @kopf.on.event(GROUP, VERSION, WORKLOAD_IDENTITIES, id="identity-events", registry=registry)
    async def identity_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        memo.runtime.observe_identity(event["object"], deleted=event["type"] == "DELETED")

    @kopf.on.delete(GROUP, VERSION, WORKLOAD_IDENTITIES, id="identity-revoke", registry=registry)
    async def identity_revoke(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        async with _translated():
            await memo.runtime.identities.finalize(dict(body))

    @kopf.on.event(
        "v1", "secrets", id="secret-events", labels={MANAGED_BY: MANAGER}, registry=registry
    )
    async def secret_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        memo.runtime.observe_secret(event["object"], deleted=event["type"] == "DELETED")

    @kopf.on.event(GROUP, VERSION, SCOPED_CREDENTIALS, id="credential-events", registry=registry)
    async def credential_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        memo.runtime.observe_credential(event["object"], deleted=event["type"] == "DELETED")

    @kopf.on.delete(GROUP, VERSION, SCOPED_CREDENTIALS, id="credential-revoke", registry=registry)
    async def credential_revoke(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        async with _translated():
            await memo.runtime.scoped.finalize(dict(body))

    @kopf.on.event(GROUP, VERSION, IDENTITY_POLICIES, id="policy-events", registry=registry)
    async def policy_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        memo.runtime.observe_policy(event["object"], deleted=event["type"] == "DELETED")

    @kopf.on.event("v1", "namespaces", id="namespace-events", registry=registry)
    async def namespace_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        memo.runtime.observe_namespace(event["object"], deleted=event["type"] == "DELETED")

    return registry


async def run(
    start_runtime: Callable[[], Awaitable[Runtime]],
    access: ClusterAccess,
    *,
    namespaces: Sequence[str],
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run Kopf with wio's handlers until ``stop_flag`` is set: cluster-wide, or only in
    ``namespaces``. Single replica (``standalone``): no peering objects."""
    await kopf.operator(
        registry=build_registry(start_runtime, access),
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        memo=kopf.Memo(),
        standalone=True,
    )
