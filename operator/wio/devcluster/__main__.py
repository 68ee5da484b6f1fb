# SPDX-License-Identifier: Apache-2.0
"""``python -m wio.devcluster``: build the binaries, or run the local control plane (optionally
with a real node) until Ctrl-C."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from wio.devcluster.binaries import (
    Unavailable,
    find_binaries,
    find_helm,
    find_node_binaries,
    find_promtool,
    kube_cache_dir,
    pin,
)
from wio.devcluster.cluster import ControlPlane
from wio.devcluster.image import ImageBuildFailed, build_image, why_not_buildable
from wio.devcluster.node import Node, why_node_unavailable
from wio.devcluster.openbao import OpenBao
from wio.devcluster.packages import NODE_PACKAGES, ensure_packages, why_not_installable

#: The source checkout this package runs from (the image is built from its Dockerfile).
REPO = Path(__file__).resolve().parents[3]


def _image() -> int:
    """Build (or find cached) the operator image; print its docker-archive."""
    reason = why_not_buildable()
    if reason is not None:
        print(f"wio.devcluster: cannot build the image here: {reason}", file=sys.stderr)
        return 1
    try:
        print(f"image: {build_image(REPO)}")
    except (Unavailable, ImageBuildFailed) as err:
        print(f"wio.devcluster: {err}", file=sys.stderr)
        return 1
    return 0


def _up(args: argparse.Namespace) -> int:
    binaries = find_binaries()
    node_binaries = None
    if args.node:
        reason = why_node_unavailable()
        if reason is not None:
            print(f"wio.devcluster: cannot run a node here: {reason}", file=sys.stderr)
            return 1
        node_binaries = find_node_binaries()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    with ExitStack() as stack:
        cluster = stack.enter_context(ControlPlane(binaries, node=node_binaries))
        bao = stack.enter_context(OpenBao(binaries.bao))
        node_line = ""
        if node_binaries is not None:
            node = stack.enter_context(Node(cluster, node_binaries))
            ready = node.wait_ready()
            node_line = (
                f"Node {node.name} Ready {ready + (node.startup_seconds or 0):.1f}s after the "
                f"control plane; import images with `ctr --address={node.containerd_socket} "
                "--namespace=k8s.io images import IMAGE.tar`\n"
            )
        kubeconfig = Path(args.kubeconfig).resolve()
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cluster.kubeconfig, kubeconfig)
        kubeconfig.chmod(0o600)
        print(
            f"Local control plane ready in {cluster.startup_seconds:.1f}s at {cluster.server}\n"
            f"OpenBao dev server at {bao.address} (root token in {bao.workdir}/root-token)\n"
            f"{node_line}\n"
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
    up.add_argument(
        "--node",
        action="store_true",
        help="also run a kube-scheduler and a real node (containerd + kubelet; root, Linux)",
    )
    build = sub.add_parser(
        "build",
        help="build and cache the Kubernetes binaries (node ones too), helm and promtool; "
        "where a node can run (root, Debian), install its packages and build the operator image",
    )
    build.add_argument(
        "--if-possible",
        action="store_true",
        help="when a prerequisite is missing, say what and exit 0 (the tests then skip or fail)",
    )
    sub.add_parser(
        "image", help="build the operator image from the Dockerfile (root; Debian's Docker)"
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
        if args.command == "image":
            return _image()
        build = args.command == "build"
        binaries = find_binaries(build=build)
        node_binaries = find_node_binaries(build=build)
        helm = find_helm(build=build)
        promtool = find_promtool(build=build)
    except Unavailable as err:
        print(f"wio.devcluster: {err}", file=sys.stderr)
        return 0 if getattr(args, "if_possible", False) else 1
    print(f"kubernetes cache: {kube_cache_dir()}")
    for name, path in (*vars(binaries).items(), *vars(node_binaries).items()):
        print(f"{name}: {path}")
    print(f"helm: {helm}")
    print(f"promtool: {promtool}")
    if build and why_not_installable() is None:
        try:
            ensure_packages(NODE_PACKAGES)
        except Unavailable as err:
            print(f"wio.devcluster: {err}", file=sys.stderr)
            return 0 if args.if_possible else 1
    # Not being able to run a node is not a build failure: the e2e tier skips with this reason.
    cannot = why_node_unavailable() or why_not_buildable()
    print(f"real node: {cannot or 'can run here'}")
    if build and cannot is None and (REPO / "Dockerfile").is_file():
        # The e2e tier's image, built before the tests so no test's timeout includes it.
        return _image()
    return 0


if __name__ == "__main__":
    sys.exit(main())
