# SPDX-License-Identifier: Apache-2.0
"""One replica among several: a read-only standby until it holds the Lease, then the leader.

``run_replica`` serves from a ``Standby`` (read-only: the public documents and introspection
from what the leader stored) while ``LeaderElector`` tries the Lease. Once it leads, the
controllers start (Kopf with the full runtime, through ``run_controllers``); when they are
running the standby view stops. On a stop (flag or signal) the controllers stop first and
only then is the Lease handed back, so a new leader never overlaps a writing one. When the
Lease cannot be renewed (the renew deadline is shorter than the lease, so before anyone else
may take it) the controllers are cancelled at once and the replica stands by again: after an
API server outage a single replica leads again without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from wio.composition.standby import Standby
from wio.service.leadership import LeaderElector, LeadershipLost

log = logging.getLogger(__name__)
Flag = asyncio.Event | threading.Event
#: Runs the controllers until the first event is set; sets the second once they run.
RunControllers = Callable[[asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]]


def replica_identity() -> str:
    """Who this replica is in the Lease: its pod's name (the chart passes it), else the host
    name; with a random suffix, so neither two processes on one host nor a container
    restarted in the same pod (always PID 1) are ever taken for one another."""
    name = os.environ.get("WIO_POD_NAME") or socket.gethostname()
    return f"{name}_{secrets.token_hex(4)}"


async def run_replica(
    elector: LeaderElector,
    new_standby: Callable[[], Standby],
    run_controllers: RunControllers,
    *,
    stop_flag: Flag | None,
    ready_flag: Flag | None,
    stop_signals: tuple[signal.Signals, ...],
    on_lost: Callable[[], Awaitable[None]],
) -> None:
    """Stand by, lead once elected, and stop as described in the module docstring. A lost
    Lease stops the controllers at once (``on_lost`` stops what they left running), and the
    replica stands by again."""
    signalled = asyncio.Event()
    _on_signals(stop_signals, signalled.set)
    stopping = asyncio.create_task(_first_set(stop_flag, signalled), name="wio-stop-flag")
    try:
        while True:
            standby = new_standby()
            standby.start()
            try:
                if not await _unless_stopped(elector.acquire(), stopping):
                    return

                async def running(view: Standby = standby) -> None:
                    # Kopf installed its own signal handlers; a signal must stop it through
                    # the flag instead, as the Lease is handed over only after Kopf stopped.
                    _on_signals(stop_signals, signalled.set)
                    # The standby view served until the leader's runtime could.
                    await view.stop()
                    if ready_flag is not None:
                        ready_flag.set()

                await _lead(elector, run_controllers, stopping, running)
                return
            except LeadershipLost as err:
                log.error("%s; standing by again", err)
                await on_lost()
            finally:
                await standby.stop()
    finally:
        stopping.cancel()


async def _lead(
    elector: LeaderElector,
    run_controllers: RunControllers,
    stopping: asyncio.Task[None],
    on_running: Callable[[], Awaitable[None]],
) -> None:
    """Run the controllers while the Lease is renewed; stop them, then release the Lease."""
    stop_controllers, started = asyncio.Event(), asyncio.Event()
    controllers = asyncio.create_task(
        run_controllers(stop_controllers, started), name="wio-controllers"
    )
    renewing = asyncio.create_task(elector.hold(), name="wio-lease")
    ends = {stopping, renewing, controllers}
    running = asyncio.create_task(started.wait(), name="wio-started")
    await asyncio.wait({*ends, running}, return_when=asyncio.FIRST_COMPLETED)
    if running.done() and not any(task.done() for task in ends):
        await on_running()
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    running.cancel()
    if renewing.done():
        # Lost the Lease: another replica may lead soon, so stop at once, not gracefully.
        controllers.cancel()
        await asyncio.gather(controllers, return_exceptions=True)
        renewing.result()  # raises LeadershipLost
    stop_controllers.set()
    await asyncio.gather(controllers, return_exceptions=True)
    renewing.cancel()
    await asyncio.gather(renewing, return_exceptions=True)
    await elector.release()
    controllers.result()  # a crash of the controllers is the caller's to see


def _on_signals(signals: tuple[signal.Signals, ...], handler: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, handler)


async def _first_set(flag: Flag | None, other: asyncio.Event) -> None:
    """Return once ``flag`` or ``other`` is set."""
    waits = [asyncio.ensure_future(_wait_for(flag)), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _wait_for(flag: Flag | None) -> None:
    """Return once ``flag`` is set (never, for None)."""
    if flag is None:
        await asyncio.Event().wait()
    elif isinstance(flag, asyncio.Event):
        await flag.wait()
    else:
        # A thread's Event cannot be awaited; waiting for it in a worker thread would keep
        # asyncio.run from returning while it is unset.
        while not flag.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def _unless_stopped(work: Awaitable[None], stopping: asyncio.Task[None]) -> bool:
    """Run ``work`` until done (True) or until ``stopping`` completes first (False)."""
    task = asyncio.ensure_future(work)
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False
