# SPDX-License-Identifier: Apache-2.0
"""``python -m tests.support.crashing_operator CONFIG.json KUBECONFIG STEP``: wio that dies.

The operator runs normally until it reaches STEP of a rotation, then the process ends at once
(``os._exit``: no cleanup, no flush), as a kill -9 or an OOM would end it:

- ``after-signing``: the new credential exists, the Secret write has not been sent;
- ``after-secret-write``: the Secret holds the new credential, status does not know it yet;
- ``before-status-patch``: the status patch is about to be sent.

Only rotations count (a Secret that already holds a credential), not first issuance.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wio.cli import run_operator
from wio.config import parse_config
from wio.k8s.access import ClusterAccess, from_kubeconfig
from wio.k8s.client import KubeClient

CRASH_EXIT = 86


class CrashingKubeClient(KubeClient):
    step = ""

    def __init__(self, access: ClusterAccess, *, max_inflight: int) -> None:
        super().__init__(access, max_inflight=max_inflight)
        self._rotating = False

    async def apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        is_identity_secret = "/secrets/" in path and "identity.wio.dev/serial" in (
            body.get("metadata", {}).get("annotations") or {}
        )
        if is_identity_secret:
            try:
                await self.get(path)
                self._rotating = True
            except Exception:  # no Secret yet: a first issuance, not a rotation
                self._rotating = False
            if self._rotating and self.step == "after-signing":
                os._exit(CRASH_EXIT)
        answer = await super().apply(path, body)
        if is_identity_secret and self._rotating and self.step == "after-secret-write":
            os._exit(CRASH_EXIT)
        return answer

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if path.endswith("/status") and self._rotating and self.step == "before-status-patch":
            os._exit(CRASH_EXIT)
        return await super().merge_patch(path, body)


def main() -> None:
    config_path, kubeconfig, step = sys.argv[1:4]
    CrashingKubeClient.step = step
    config = parse_config(json.loads(Path(config_path).read_text()), {})
    asyncio.run(
        run_operator(config, from_kubeconfig(Path(kubeconfig)), kube_factory=CrashingKubeClient)
    )


if __name__ == "__main__":
    main()
