# SPDX-License-Identifier: Apache-2.0
"""Child processes that cannot outlive us, and waiting for them to become ready.

Every server is started with ``PR_SET_PDEATHSIG`` so the kernel sends it SIGKILL when the
process that started it dies, however it dies (a crashed test, SIGKILL, a closed terminal).
SIGKILL rather than SIGTERM: a kube-apiserver whose etcd died at the same moment can hang in
its graceful shutdown, and an orphan must never survive.
Orderly stops go through ``ManagedProcess.stop``: SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessFailed(Exception):
    """A managed server exited early or never became ready."""


class ManagedProcess:
    """One server process, its log file, and a way to stop it for sure."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            # Own session: a Ctrl-C in the terminal reaches us, and we stop servers in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Poll ``probe`` until it returns True; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessFailed(
                    f"{self.name} exited with code {self.proc.returncode}; last log lines:\n"
                    + self.log_tail()
                )
            with contextlib.suppress(Exception):
                if probe():
                    return
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise ProcessFailed(
            f"{self.name} not ready after {timeout:.0f}s; last log lines:\n" + self.log_tail()
        )

    def stop(self, grace: float = 10.0) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def kill(self) -> None:
        """Stop abruptly, as a crash would (fault tests)."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()
