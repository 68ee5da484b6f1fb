# SPDX-License-Identifier: Apache-2.0
"""Debian packages the real-node tier needs, installed by the project itself.

The e2e tier runs a kubelet on Debian's containerd and builds the operator image with Debian's
Docker engine. Those come from the distribution's packages, so a fresh machine needs nothing
installed by hand: ``ensure_packages`` installs what is missing with ``apt-get`` when this
process is root on a Debian-like system, and otherwise says exactly why it cannot.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from wio.devcluster.binaries import Unavailable

#: What the node needs (the kubelet's container runtime and pod network).
NODE_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "conntrack")
#: What the image build needs (an engine to build with, and a base made without a registry).
IMAGE_PACKAGES = ("docker.io", "mmdebstrap")
_LOCK = Path("/run/lock/wio-apt.lock")


def missing_packages(names: tuple[str, ...]) -> list[str]:
    """The packages of ``names`` not installed (dpkg's view), in order."""
    if shutil.which("dpkg-query") is None:
        return list(names)
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *names],
        capture_output=True,
        text=True,
    )
    installed = {
        line.split()[0]
        for line in result.stdout.splitlines()
        if line.endswith(" installed") and line.split()
    }
    return [name for name in names if name not in installed]


def why_not_installable() -> str | None:
    """Why this process cannot install Debian packages, or None when it can."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        return "no apt-get/dpkg here (the real-node tier needs a Debian-like system)"
    if os.geteuid() != 0:
        return "not root (installing packages and running a kubelet need root)"
    return None


def ensure_packages(names: tuple[str, ...]) -> None:
    """Install whichever of ``names`` are missing; raise ``Unavailable`` saying why if it cannot."""
    missing = missing_packages(names)
    if not missing:
        return
    reason = why_not_installable()
    if reason is not None:
        raise Unavailable(f"Debian packages {', '.join(missing)} are missing and {reason}")
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = missing_packages(names)
        if not missing:
            return
        print(
            f"wio.devcluster: installing Debian packages {', '.join(missing)}",
            file=sys.stderr,
            flush=True,
        )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        quiet = ["-o", "Dpkg::Use-Pty=0", "-qq"]
        steps = (
            ["apt-get", *quiet, "update"],
            ["apt-get", *quiet, "install", "-y", "--no-install-recommends", *missing],
        )
        for step in steps:
            result = subprocess.run(step, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise Unavailable(
                    f"`{' '.join(step)}` failed (exit {result.returncode}):\n"
                    + result.stderr[-3000:]
                )
    still = missing_packages(names)
    if still:
        raise Unavailable(f"Debian packages {', '.join(still)} did not install")
