# SPDX-License-Identifier: Apache-2.0
"""The operator, run in-process on its own thread and event loop, against the real cluster.

Tests start and stop it like a deployment would (a stop is a graceful Kopf shutdown; ``kill``
abandons the loop without cleanup, as a crash would), and read its HTTP endpoints.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from dataclasses import dataclass, field

from tests.support.waiting import wait_for
from wio.cli import run_operator
from wio.composition.runtime import Runtime
from wio.config import AdminConfig
from wio.k8s.access import ClusterAccess
from wio.metrics import Metrics


@dataclass
class InProcessOperator:
    config: AdminConfig
    access: ClusterAccess
    metrics: Metrics = field(default_factory=Metrics)
    #: Its name in the leader Lease (default: host name and process ID, so a restart in the
    #: same test process leads again at once).
    identity: str | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _holder: dict[str, Runtime] = field(default_factory=dict)
    _error: list[BaseException] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """The public port: discovery, JWKS, bundle, introspection (plain on loopback)."""
        return f"http://127.0.0.1:{self.config.http_port}"

    @property
    def ops_url(self) -> str:
        """The operations port: /metrics and the probes."""
        return f"http://127.0.0.1:{self.config.metrics_port}"

    @property
    def runtime(self) -> Runtime:
        return self._holder["runtime"]

    def start(self, timeout: float = 60.0, *, leading: bool = True) -> None:
        """Start; wait until it leads with its controllers running, or with
        ``leading=False`` only until it serves (a standby answers ``/readyz``)."""
        self._stop = threading.Event()
        self._holder.clear()
        self.metrics = Metrics()
        ready = threading.Event()

        def main() -> None:
            try:
                asyncio.run(
                    run_operator(
                        self.config,
                        self.access,
                        stop_flag=self._stop,
                        ready_flag=ready,
                        metrics=self.metrics,
                        runtime_out=self._holder,
                        identity=self.identity,
                    )
                )
            except BaseException as err:  # reported by start() and stop()
                self._error.append(err)
                ready.set()

        self._thread = threading.Thread(target=main, name="wio-operator-under-test", daemon=True)
        self._thread.start()
        if not leading:
            wait_for(self.serving, timeout=timeout, what="a serving replica")
            return
        if not ready.wait(timeout) or self._error:
            raise RuntimeError(f"operator did not start: {self._error!r}")
        # Kopf is "ready" when its startup handlers ran, which is when our runtime exists.
        if "runtime" not in self._holder:
            raise RuntimeError("operator started without a runtime")

    @property
    def errors(self) -> list[BaseException]:
        """What ended its run other than a stop (a lost Lease, a crash)."""
        return list(self._error)

    @property
    def leading(self) -> bool:
        return "runtime" in self._holder and self._holder["runtime"].ready

    def serving(self) -> bool:
        if self._error:
            raise RuntimeError(f"operator failed: {self._error!r}")
        try:
            with urllib.request.urlopen(f"{self.ops_url}/readyz", timeout=2) as answer:  # noqa: S310 - loopback
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("operator did not stop in time")
        self._thread = None
