# SPDX-License-Identifier: Apache-2.0
"""The only code that sends requests to the Kubernetes API (Kopf's watches aside).

A small asyncio client over aiohttp: bounded in-flight requests, 429 ``Retry-After`` honoured,
passing failures retried a few times with jittered backoff, and every failure translated into
wio's exception tree at this one boundary. Response bodies are never put into messages except
the API server's own ``Status.message``, which describes the request, not object data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from wio.errors import ApiConflict, ApiNotFound, ApiRejected, ApiUnavailable, WioError
from wio.k8s.access import ClusterAccess
from wio.names import API_VERSION, FIELD_MANAGER

log = logging.getLogger(__name__)
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
PARTIAL_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

_RETRYABLE = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class WatchEvent:
    """One step of a watch: ``LISTED`` carries every object, the others one each."""

    type: str
    objects: tuple[dict[str, Any], ...]


class KubeClient:
    """Asynchronous Kubernetes API client; create inside a running event loop, then ``close()``."""

    def __init__(
        self,
        access: ClusterAccess,
        *,
        max_inflight: int = 32,
        attempts: int = 4,
        timeout: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.access = access
        self._inflight = asyncio.Semaphore(max_inflight)
        self._attempts = attempts
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not a secret
        self._session = aiohttp.ClientSession(
            base_url=access.server,
            connector=aiohttp.TCPConnector(ssl=access.ssl_context(), limit=max_inflight),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        self.writes = 0  # requests other than GET/LIST, for tests and benchmarks

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = JSON,
        accept: str = JSON,
    ) -> dict[str, Any]:
        """Send one request, retrying passing failures; return the decoded JSON answer."""
        headers = self._headers(accept)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body, separators=(",", ":"))
        what = f"{method} {path}"
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._inflight:
                    if method != "GET":
                        self.writes += 1
                    async with self._session.request(
                        method, path, data=data, params=params, headers=headers
                    ) as response:
                        text = await response.text()
                        status = response.status
                        retry_after = _retry_after(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as err:
                if attempt == self._attempts:
                    raise ApiUnavailable(f"{what}: {err.__class__.__name__}") from err
                await asyncio.sleep(self._backoff(attempt, None))
                continue
            if status < 300:
                return json.loads(text) if text else {}
            message = _status_message(text, status)
            if status in _RETRYABLE and attempt < self._attempts:
                await asyncio.sleep(self._backoff(attempt, retry_after))
                continue
            raise _translate(status, f"{what}: {message}", retry_after)
        raise AssertionError("unreachable")  # pragma: no cover

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": self.access.user_agent}
        token = self.access.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 30.0)
        base: float = min(0.2 * 2.0 ** (attempt - 1), 5.0)
        return base * (0.5 + self._rng.random())

    # -- verbs -----------------------------------------------------------------------------

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def list(
        self, path: str, *, label_selector: str | None = None, metadata_only: bool = False
    ) -> list[dict[str, Any]]:
        """All items of a collection, following ``continue`` tokens in pages of 500.

        ``metadata_only`` asks for PartialObjectMetadata: names, labels and annotations
        without the objects' data, which for Secrets is most of their size.
        """
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        accept = PARTIAL_METADATA_LIST if metadata_only else JSON
        while True:
            page = await self.request("GET", path, params=params, accept=accept)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params["continue"] = token

    async def watch(
        self,
        path: str,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
        metadata_only: bool = False,
        server_timeout: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """Follow the collection ``path``: first ``LISTED`` with every object (again after
        any break), then each ``ADDED``, ``MODIFIED`` or ``DELETED`` object. A dropped or
        expired watch lists again and resumes; an unreachable API server is retried with
        backoff, forever (cancel to stop). ``metadata_only`` asks for PartialObjectMetadata.
        """
        selectors: dict[str, str] = {}
        if field_selector:
            selectors["fieldSelector"] = field_selector
        if label_selector:
            selectors["labelSelector"] = label_selector
        accept = PARTIAL_METADATA if metadata_only else JSON
        failures = 0
        while True:
            try:
                listing = await self.request(
                    "GET",
                    path,
                    params=selectors,
                    accept=PARTIAL_METADATA_LIST if metadata_only else JSON,
                )
                yield WatchEvent("LISTED", tuple(listing.get("items") or []))
                params = {
                    **selectors,
                    "watch": "1",
                    "resourceVersion": (listing.get("metadata") or {}).get("resourceVersion", ""),
                    "timeoutSeconds": str(server_timeout),
                }
                async for event in self._stream(path, params, accept, server_timeout + 30):
                    failures = 0
                    kind = event.get("type")
                    if kind == "ERROR":
                        break  # typically 410 Gone: list again
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        yield WatchEvent(kind, (event.get("object") or {},))
            except (WioError, aiohttp.ClientError, TimeoutError, ValueError) as err:
                # Unreachable, forbidden for now (RBAC being rolled out) or a torn line.
                failures += 1
                log.debug("watch of %s restarting: %s", path, err.__class__.__name__)
                await asyncio.sleep(self._backoff(min(failures, 6), None))

    async def watch_metadata(
        self, path: str, name: str, *, server_timeout: int = 300
    ) -> AsyncIterator[dict[str, Any] | None]:
        """Follow one object of collection ``path``: yield its metadata now and after every
        change, None while it does not exist. Metadata only (PartialObjectMetadata), so a
        Secret's data never crosses the wire."""
        async for event in self.watch(
            path,
            field_selector=f"metadata.name={name}",
            metadata_only=True,
            server_timeout=server_timeout,
        ):
            if event.type == "DELETED" or not event.objects:
                yield None
            else:
                yield event.objects[0].get("metadata") or {}

    async def _stream(
        self, path: str, params: Mapping[str, str], accept: str, read_timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        headers = self._headers(accept)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=read_timeout)
        async with self._session.get(
            path, params=params, headers=headers, timeout=timeout
        ) as response:
            if response.status != 200:
                raise ApiUnavailable(f"WATCH {path}: {response.status}")
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)

    async def create(
        self, path: str, body: Mapping[str, Any], *, metadata_only: bool = False
    ) -> dict[str, Any]:
        """POST ``body`` to the collection ``path``; 409 (ApiConflict) when it exists."""
        params = {"fieldManager": FIELD_MANAGER}
        accept = PARTIAL_METADATA if metadata_only else JSON
        return await self.request("POST", path, body=body, params=params, accept=accept)

    # Writes answer with the object's metadata only: wio needs the new resourceVersion, and
    # not parsing every Secret back after writing it saves CPU and memory in issuance storms.

    async def apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply with our field manager: one write that creates or updates."""
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        return await self.request(
            "PATCH",
            path,
            body=body,
            params=params,
            content_type=APPLY_PATCH,
            accept=PARTIAL_METADATA,
        )

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        params = {"fieldManager": FIELD_MANAGER}
        return await self.request(
            "PATCH",
            path,
            body=body,
            params=params,
            content_type=MERGE_PATCH,
            accept=PARTIAL_METADATA,
        )

    async def delete(self, path: str, *, missing_ok: bool = True, uid: str | None = None) -> None:
        """Delete ``path``; with ``uid``, only that very object (409 if the name now holds
        another one, the garbage collector's own precondition)."""
        body = None
        if uid is not None:
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            await self.request("DELETE", path, body=body)
        except ApiNotFound:
            if not missing_ok:
                raise


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _status_message(text: str, status: int) -> str:
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else f"HTTP {status}"


def _translate(status: int, message: str, retry_after: float | None) -> Exception:
    if status == 404:
        return ApiNotFound(message, status=status)
    if status == 409:
        return ApiConflict(message, retry_after=retry_after)
    if status in _RETRYABLE:
        return ApiUnavailable(message, retry_after=retry_after)
    return ApiRejected(message, status=status)


async def list_watched(
    kube: KubeClient,
    namespaces: Sequence[str],
    path_for: Callable[[str | None], str],
    label_selector: str | None = None,
    *,
    metadata_only: bool = False,
) -> list[dict[str, Any]]:
    """LIST a namespaced collection cluster-wide, or only in ``namespaces`` when given."""
    targets: Sequence[str | None] = namespaces or [None]
    items: list[dict[str, Any]] = []
    for namespace in targets:
        items.extend(
            await kube.list(
                path_for(namespace), label_selector=label_selector, metadata_only=metadata_only
            )
        )
    return items


def secret_path(namespace: str | None, name: str | None = None) -> str:
    if namespace is None:
        return "/api/v1/secrets"
    base = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{base}/{name}" if name else base


def configmap_path(namespace: str | None, name: str | None = None) -> str:
    if namespace is None:
        return "/api/v1/configmaps"
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def custom_path(plural: str, namespace: str | None, name: str | None = None, sub: str = "") -> str:
    ns = f"/namespaces/{namespace}" if namespace else ""
    path = f"/apis/{API_VERSION}{ns}/{plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path
