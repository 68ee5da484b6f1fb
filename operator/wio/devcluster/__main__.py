# SPDX-License-Identifier: Apache-2.0
"""``python -m wio.devcluster``: build the binaries, or run the local control plane until Ctrl-C."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from pathlib import Path

from wio.devcluster.binaries import Unavailable, find_binaries, find_helm, kube_cache_dir, pin
from wio.devcluster.cluster import ControlPlane
from wio.devcluster.openbao import OpenBao


def _up(args: argparse.Namespace) -> int:
    binaries = find_binaries()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    with ControlPlane(binaries) as cluster, OpenBao(binaries.bao) as bao:
        kubeconfig = Path(args.kubeconfig).resolve()
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cluster.kubeconfig, kubeconfig)
        kubeconfig.chmod(0o600)
        print(
            f"Local control plane ready in {cluster.startup_seconds:.1f}s at {cluster.server}\n"
            f"OpenBao dev server at {bao.address} (root token in {bao.workdir}/root-token)\n\n"
            f"  export KUBECONFIG={kubeconfig}\n"
            f"  {binaries.kubectl} get namespaces\n\n"
            "Press Ctrl-C to stop; every process started here stops with it.",
            flush=True,
        )
        token_file = bao.workdir / "root-token"
        token_file.write_text(bao.root_token)
        token_file.chmod(0o600)
        stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wio.devcluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the control plane and OpenBao until interrupted")
    up.add_argument("--kubeconfig", default=".wio-dev/kubeconfig", help="where to write it")
    build = sub.add_parser("build", help="build and cache the Kubernetes binaries and helm")
    build.add_argument(
        "--if-possible",
        action="store_true",
        help="when a prerequisite is missing, say what and exit 0 (the tests then skip or fail)",
    )
    sub.add_parser("check", help="say which binaries are present and which are missing")
    pin_cmd = sub.add_parser("pin", help="re-pin k8s.io/kubernetes (maintainers)")
    pin_cmd.add_argument("version", help="a release such as v1.37.2")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return _up(args)
        if args.command == "pin":
            pin(args.version)
            return 0
        binaries = find_binaries(build=args.command == "build")
        helm = find_helm(build=args.command == "build")
    except Unavailable as err:
        print(f"wio.devcluster: {err}", file=sys.stderr)
        return 0 if getattr(args, "if_possible", False) else 1
    print(f"kubernetes cache: {kube_cache_dir()}")
    for name, path in vars(binaries).items():
        print(f"{name}: {path}")
    print(f"helm: {helm}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
