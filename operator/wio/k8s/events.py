# SPDX-License-Identifier: Apache-2.0
"""Kubernetes Events, posted in the background so reconciliation never waits on them.

Events are best-effort by nature: a full queue drops the oldest intent rather than slowing
issuance, and a failed post is logged, not retried forever. Messages are written by wio and
never contain key material or tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from wio.errors import WioError
from wio.k8s.client import KubeClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    involved: Mapping[str, str]  # apiVersion, kind, namespace, name, uid
    type: str  # Normal | Warning
    reason: str
    message: str


class EventRecorder:
    """A bounded queue of Events and one task that posts them."""

    def __init__(self, kube: KubeClient, *, component: str = "wio", capacity: int = 1000) -> None:
        self._kube = kube
        self._component = component
        self._queue: asyncio.Queue[Event] = asyncio.Queue(capacity)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def record(self, involved: Mapping[str, str], type_: str, reason: str, message: str) -> None:
        event = Event(involved, type_, reason, message[:1024])
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wio-events")

    async def stop(self, flush_timeout: float = 2.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), flush_timeout)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._post(event)
            except WioError as err:
                log.warning("could not post Event %s: %s", event.reason, err)
            finally:
                self._queue.task_done()

    async def _post(self, event: Event) -> None:
        namespace = event.involved.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{event.involved.get('name', 'wio')}.{secrets.token_hex(8)}",
                "namespace": namespace,
            },
            "involvedObject": dict(event.involved),
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._kube.create(f"/api/v1/namespaces/{namespace}/events", body)
