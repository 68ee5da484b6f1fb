# SPDX-License-Identifier: Apache-2.0
"""The audit stream: every issuance, rotation, denial, revocation, rollover and introspection
answer, one hash-chained JSON line each (``wio.models.audit`` has the schema).

One ``AuditTrail`` per replica process: the standby view and the leader's controllers write
into the same chain. Lines go to the ``wio.audit`` logger, which the command line sends to
standard output as bare JSON (ordinary logs go to standard error), so a log shipper can keep
them apart and ``wio audit verify`` can check what it kept.
"""

from __future__ import annotations

import json
import logging
import threading

from wio import __version__
from wio.clock import Clock
from wio.models.audit import AuditEvent, chained

log = logging.getLogger("wio.audit")


class AuditTrail:
    def __init__(self, replica: str, clock: Clock, logger: logging.Logger = log) -> None:
        self._replica = replica
        self._clock = clock
        self._logger = logger
        self._seq = 0
        self._prev: str | None = None
        # Records are numbered and chained in the order they are written; the HTTP server
        # and the controllers share one event loop, but tests drive several loops at once.
        self._lock = threading.Lock()
        self.record(AuditEvent("start", "success", reason=f"wio {__version__}"))

    def record(self, event: AuditEvent) -> None:
        with self._lock:
            line = chained(
                event, seq=self._seq, prev=self._prev, replica=self._replica, now=self._clock.now()
            )
            self._seq += 1
            self._prev = line["hash"]
            self._logger.info(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
