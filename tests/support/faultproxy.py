# SPDX-License-Identifier: Apache-2.0
"""A loopback proxy in front of the real API server that injects scripted faults.

A real API server cannot be made to answer 429, 500 or 409 on demand, nor to expire a watch
with 410 Gone; this proxy can. Everything it does not fault is forwarded (watches streamed)
to the real server with the admin client certificate, so the operator behind it talks to a
real cluster in every other respect.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import threading
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from wio.devcluster import ControlPlane
from wio.devcluster.processes import free_port


@dataclass
class Fault:
    """Answer the next ``times`` requests matching ``method`` and ``path`` with ``status``."""

    method: str
    path: str  # a regular expression searched in the path
    status: int
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    watch: bool = False  # match only watch requests (410 is sent as a watch ERROR event)
    served: int = 0

    def matches(self, request: web.Request) -> bool:
        is_watch = request.query.get("watch") in ("1", "true")
        return (
            self.served < self.times
            and request.method == self.method
            and is_watch == self.watch
            and re.search(self.path, request.path) is not None
        )


class FaultProxy:
    def __init__(self, cluster: ControlPlane) -> None:
        self.cluster = cluster
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def _take(self, request: web.Request) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(request):
                    fault.served += 1
                    return fault
        return None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tls: ssl.SSLContext = self.cluster.ssl_context()
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls, limit=100),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        app = web.Application()

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, session)

        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        await session.close()

    async def _handle(
        self, request: web.Request, session: aiohttp.ClientSession
    ) -> web.StreamResponse:
        fault = self._take(request)
        if fault is not None:
            return self._fault_response(fault)
        body = await request.read()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "authorization")
        }
        upstream = await session.request(
            request.method,
            f"{self.cluster.server}{request.path_qs}",
            data=body or None,
            headers=headers,
        )
        response = web.StreamResponse(status=upstream.status)
        for name in ("Content-Type", "Retry-After"):
            if name in upstream.headers:
                response.headers[name] = upstream.headers[name]
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (ConnectionResetError, aiohttp.ClientError):
            pass
        finally:
            upstream.release()
        return response

    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": f"scripted fault {fault.status}",
            "code": fault.status,
        }
        if fault.watch:
            # A watch that expired: the server sends an ERROR event with a 410 Status.
            event = json.dumps({"type": "ERROR", "object": {**status, "reason": "Expired"}})
            return web.Response(status=200, text=event + "\n", content_type="application/json")
        return web.Response(
            status=fault.status,
            text=json.dumps(status),
            content_type="application/json",
            headers=fault.headers,
        )
