# SPDX-License-Identifier: Apache-2.0
"""The public port, served with TLS: a certificate wio issues itself, or the admin's files.

Discovery, the JWKS, the SPIFFE bundle and introspection (where callers send their
credentials) are served over TLS unless the admin says otherwise (``http.tls.mode``):

- ``self``: every replica issues itself a 24-hour certificate from the local CA, for the
  SPIFFE ID ``spiffe://<trust-domain>/ns/<operator-namespace>/sa/<service>`` and the Service's
  DNS names, in memory only (no API write: standbys do it too). It is renewed at half its
  life and as soon as the CA that signed it is no longer the active one. Clients trust the
  local CA, which every namespace's ``wio-trust-bundle`` carries.
- ``files``: the admin's certificate and key (a mounted Secret, from cert-manager say), read
  again whenever they change on disk.
- ``none``: plain HTTP, for TLS terminated in front of wio; ``auto`` is ``self`` unless the
  port is bound to a loopback address.

The listener opens only once there is a certificate; until then the replica is not ready.
New certificates go into the same ``SSLContext``, so connections made after a renewal get
the new one and none is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from wio.clock import Clock
from wio.config import AdminConfig
from wio.errors import WioError
from wio.issuing.ca import LocalCA
from wio.issuing.keys import generate_private_key
from wio.models.keytypes import KeyType
from wio.models.spiffe import SpiffeID
from wio.web import serve

log = logging.getLogger(__name__)
SERVING_TTL = dt.timedelta(hours=24)
#: How often the certificate's age, the CA and the admin's files are looked at.
RECHECK_SECONDS = 30.0
#: Until the first certificate exists (the leader has not created the CA yet).
FIRST_RECHECK_SECONDS = 1.0


class PublicListener:
    def __init__(
        self,
        config: AdminConfig,
        app: web.Application,
        local_ca: Callable[[], LocalCA | None],
        clock: Clock,
    ) -> None:
        self._config = config
        self._app = app
        self._local_ca = local_ca
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self._context: ssl.SSLContext | None = None
        self._loaded: object = None  # what the context holds: (CA cert, renew at) or file stamps

    @property
    def up(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        if not self._config.serves_tls:
            self._runner = await serve(self._app, self._config.http_host, self._config.http_port)
            return
        self._task = asyncio.create_task(self._run(), name="wio-public-tls")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _run(self) -> None:
        while True:
            try:
                await self._refresh()
            except (WioError, OSError, ValueError, ssl.SSLError) as err:
                log.warning("no serving certificate for the public port yet: %s", err)
            await asyncio.sleep(RECHECK_SECONDS if self.up else FIRST_RECHECK_SECONDS)

    async def _refresh(self) -> None:
        """Load a new certificate when one is due; open the port with the first."""
        material = self._files() if self._config.tls_mode == "files" else self._issued()
        if material is None:
            return
        stamp, chain, key = material
        if self._context is None:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        _load(self._context, chain, key)
        self._loaded = stamp
        if self._runner is None:
            self._runner = await serve(
                self._app, self._config.http_host, self._config.http_port, self._context
            )
            log.info("serving the public documents with TLS on port %d", self._config.http_port)

    def _issued(self) -> tuple[object, bytes, bytes] | None:
        """A fresh self-issued certificate when none is loaded, it is past half its life,
        or its CA is no longer the active one; else None."""
        ca = self._local_ca()
        if ca is None:
            return None
        now = self._clock.now()
        active = ca.state.active.cert
        if isinstance(self._loaded, tuple) and self._loaded[0] == active and now < self._loaded[1]:
            return None
        key = generate_private_key(KeyType.ECDSAP256)
        subject = SpiffeID.for_workload(
            self._config.trust_domain,
            self._config.operator_namespace,
            self._config.tls_service_name,
        )
        issued = ca.issue(
            key.public_key,
            subject,
            ttl=SERVING_TTL,
            now=now,
            dns_names=self._config.serving_dns_names,
        )
        chain = b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (issued.cert, *issued.chain)
        )
        renew_at = now + SERVING_TTL / 2
        log.info("issued the public port's certificate (renewed after %s)", renew_at.isoformat())
        return (active, renew_at), chain, key.to_pkcs8_pem()

    def _files(self) -> tuple[object, bytes, bytes] | None:
        """The admin's files when they are new or changed; else None."""
        cert, key = self._config.tls_cert_file, self._config.tls_key_file
        assert cert is not None
        assert key is not None
        stamp = tuple((p, p.stat().st_mtime_ns, p.stat().st_size) for p in (cert, key))
        if stamp == self._loaded:
            return None
        return stamp, cert.read_bytes(), key.read_bytes()


def _load(context: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    """``ssl`` loads certificates from files only: write them privately, load, remove."""
    with tempfile.TemporaryDirectory(prefix="wio-serving-") as tmp:
        cert_path, key_path = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert_path.write_bytes(chain)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with contextlib.closing(os.fdopen(fd, "wb")) as handle:
            handle.write(key)
        context.load_cert_chain(cert_path, key_path)
