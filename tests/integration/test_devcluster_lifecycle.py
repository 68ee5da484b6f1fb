# SPDX-License-Identifier: Apache-2.0
"""No process of the local control plane outlives whatever started it, however that ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.cluster import REPO
from tests.support.waiting import wait_for
from wio.devcluster import Binaries

_STARTER = """
import json, sys, time
from wio.devcluster import ControlPlane, OpenBao, find_binaries
b = find_binaries(build=False)
cp = ControlPlane(b); cp.start()
bao = OpenBao(b.bao); bao.start()
print(json.dumps(cp.pids() + bao.pids()), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "operator")}


def test_servers_die_when_their_starter_is_killed(binaries: Binaries) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", _STARTER], stdout=subprocess.PIPE, text=True, env=_env()
    )
    assert starter.stdout is not None
    pids = json.loads(starter.stdout.readline())
    assert len(pids) == 4
    assert all(_alive(p) for p in pids)

    starter.send_signal(signal.SIGKILL)  # no cleanup code runs: only the kernel can help
    starter.wait()

    wait_for(
        lambda: not any(_alive(p) for p in pids),
        timeout=30,
        what=f"etcd, kube-apiserver, kube-controller-manager and bao ({pids}) to exit",
    )


def test_devcluster_up_stops_everything_on_ctrl_c(binaries: Binaries, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    up = subprocess.Popen(
        [sys.executable, "-m", "wio.devcluster", "up", f"--kubeconfig={kubeconfig}"],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert up.stdout is not None
    lines = []
    for line in up.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    assert any(f"export KUBECONFIG={kubeconfig}" in line for line in lines)
    servers = _children(up.pid)
    assert len(servers) == 4

    kubectl = [str(binaries.kubectl), f"--kubeconfig={kubeconfig}"]
    listed = subprocess.run([*kubectl, "get", "namespaces", "-o", "name"], capture_output=True)
    assert b"namespace/default" in listed.stdout

    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=60) == 0
    assert not any(_alive(p) for p in servers)
