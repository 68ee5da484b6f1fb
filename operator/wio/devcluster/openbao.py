# SPDX-License-Identifier: Apache-2.0
"""A real OpenBao dev server on loopback, for the Vault-backed signers and their tests.

Dev mode keeps everything in memory and starts unsealed; the root token is generated here
per run and never written to the user's token helper file.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
import urllib.request
from pathlib import Path

from wio.devcluster.processes import ManagedProcess, free_port


class OpenBao:
    """``bao server -dev`` on a free loopback port with a generated root token."""

    def __init__(self, bao: Path, workdir: Path | None = None) -> None:
        self.bao = bao
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="wio-openbao-"))
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.root_token = secrets.token_urlsafe(24)
        self._proc: ManagedProcess | None = None
        self.startup_seconds: float | None = None

    def __enter__(self) -> OpenBao:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        began = time.monotonic()
        argv = [
            str(self.bao),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            f"-dev-root-token-id={self.root_token}",
            "-dev-no-store-token",
            "-log-level=warn",
        ]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir)}
        self._proc = ManagedProcess("openbao", argv, self.workdir / "openbao.log", env)
        try:
            self._proc.wait_ready(self._healthy, timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.address}/v1/sys/health", timeout=2) as resp:  # noqa: S310
            return bool(json.load(resp).get("sealed") is False)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def kill(self) -> None:
        """Take the server away abruptly (fault tests); ``start`` brings a fresh one back."""
        if self._proc is not None:
            self._proc.kill()
            self._proc = None

    def pids(self) -> list[int]:
        return [self._proc.pid] if self._proc is not None else []
