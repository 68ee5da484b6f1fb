# SPDX-License-Identifier: Apache-2.0
"""Where the e2e tier runs: a real node joined to the local control plane, or kind.

Both backends give the tests the same thing, a ``Cluster``: a kubeconfig, ``kubectl`` and
``helm``, the operator image already on the node, and (where the backend can) the API
server's audit log and a way to kill a container as a crash would.

- ``node``: the local control plane with a kubelet on Debian's containerd
  (``wio.devcluster.Node``), the image built from the Dockerfile on a locally made base and
  imported into the node. Needs root and Debian packages (installed by the project itself);
  elsewhere it skips with the reason, and under ``CI=true`` it fails instead.
- ``kind``: pytest-kind, where a Docker engine and kind's node image are reachable (never on
  the machines this project is built on: no registry). Skips with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.support.cluster import REPO, api_client, missing_prerequisite

CHART = REPO / "charts" / "wio"


def run(*argv: str | Path, timeout: float = 600, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, input=stdin
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result.stdout


@dataclass
class Cluster:
    backend: str
    kubeconfig: Path
    kubectl_bin: str
    helm_bin: str
    image_repository: str
    image_tag: str
    #: The API server's audit log (JSON lines, every write with its user agent), if known.
    audit_log: Path | None
    #: Kill a pod's container at once, as a crash would (SIGKILL, no grace).
    kill: Callable[[str, str], None]

    @property
    def image(self) -> str:
        return f"{self.image_repository}:{self.image_tag}"

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        return run(
            self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args, stdin=stdin, timeout=timeout
        )

    def apply(self, docs: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs))

    def get(self, *args: str) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return answer

    def helm(self, *args: str, timeout: float = 600) -> str:
        return run(self.helm_bin, f"--kubeconfig={self.kubeconfig}", *args, timeout=timeout)

    @contextlib.contextmanager
    def api(self) -> Iterator[client.ApiClient]:
        api = api_client(self.kubeconfig)
        try:
            yield api
        finally:
            api.close()


def _kill_local_container(pod: str, _namespace: str) -> None:
    """SIGKILL the operator process of ``pod`` on the local node (it is a host process)."""
    needle = f"WIO_POD_NAME={pod}".encode()
    killed = 0
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                os.kill(int(environ.parent.name), signal.SIGKILL)
                killed += 1
        except (OSError, ValueError):
            continue  # exited meanwhile, or not ours to read
    assert killed, f"no process of pod {pod} found on the node"


@contextlib.contextmanager
def _node_backend(tmp: Path) -> Iterator[Cluster]:
    from wio.devcluster import ControlPlane, Node, Unavailable, find_binaries, find_node_binaries
    from wio.devcluster.binaries import find_helm
    from wio.devcluster.image import DEFAULT_TAG, ImageBuildFailed, build_image
    from wio.devcluster.node import why_node_unavailable

    reason = why_node_unavailable()
    if reason is not None:
        missing_prerequisite(f"no local node: {reason}")
    try:
        binaries = find_binaries()
        node_binaries = find_node_binaries()
        helm = find_helm()
        began = time.monotonic()
        archive = build_image(REPO)
        print(f"\nimage ready in {time.monotonic() - began:.1f}s")
    except Unavailable as err:
        missing_prerequisite(str(err))
        raise  # unreachable: missing_prerequisite raises
    except ImageBuildFailed as err:
        pytest.fail(f"the operator image did not build: {err}", pytrace=False)
    repository, tag = DEFAULT_TAG.split(":")
    with (
        ControlPlane(binaries, node=node_binaries) as cluster,
        Node(cluster, node_binaries) as node,
    ):
        began = time.monotonic()
        node.import_image(archive)
        node.wait_ready(timeout=60)
        print(f"image imported and node Ready in {time.monotonic() - began:.1f}s")
        yield Cluster(
            backend="node",
            kubeconfig=cluster.kubeconfig,
            kubectl_bin=str(binaries.kubectl),
            helm_bin=str(helm),
            image_repository=repository,
            image_tag=tag,
            audit_log=cluster.audit_log,
            kill=_kill_local_container,
        )


def _docker_problem(docker: str | None) -> str | None:
    if docker is None:
        return "docker is not installed"
    try:
        subprocess.run([docker, "info"], capture_output=True, timeout=20, check=True)
    except subprocess.TimeoutExpired:
        return "no usable Docker engine: `docker info` did not answer within 20s"
    except (subprocess.CalledProcessError, OSError) as err:
        detail = getattr(err, "stderr", b"") or b""
        first = detail.decode(errors="replace").strip().splitlines()[:1]
        return f"no usable Docker engine: `docker info` failed ({' '.join(first) or err})"
    return None


def _tool(request: pytest.FixtureRequest, option: str, name: str) -> str | None:
    given = request.config.getoption(option, default=None)
    return str(Path(given).resolve()) if given else shutil.which(name)


@contextlib.contextmanager
def _kind_backend(request: pytest.FixtureRequest, tmp: Path) -> Iterator[Cluster]:
    """kind through pytest-kind: skipped (also under CI) where Docker or kind is missing,
    as no registry serves kind's node image on the machines this project is built on."""
    docker = shutil.which("docker")
    problem = _docker_problem(docker)
    if problem:
        pytest.skip(f"kind backend: {problem}")
    kind_bin = _tool(request, "kind_bin", "kind")
    if kind_bin is None:
        pytest.skip("kind backend: kind is not installed (put it on PATH or pass --kind-bin)")
    kubectl = _tool(request, "kind_kubectl_bin", "kubectl")
    if kubectl is None:
        pytest.skip("kind backend: kubectl is not installed (PATH or --kind-kubectl-bin)")
    from pytest_kind import KindCluster  # only where a cluster can really be made

    from wio.devcluster.binaries import find_helm

    assert docker is not None
    image = "wio:e2e"
    run(docker, "build", "--tag", image, REPO, timeout=1800)
    kubeconfig = tmp / "kubeconfig"
    with contextlib.chdir(tmp):  # pytest-kind keeps a state folder in the working directory
        cluster = KindCluster(
            "wio-e2e",
            kubeconfig=kubeconfig,
            image=request.config.getoption("kind_image", default=None),
            kind_path=Path(kind_bin),
            kubectl_path=Path(kubectl),
        )
        cluster.create()
    try:
        cluster.load_docker_image(image)

        def force_delete(pod: str, namespace: str) -> None:
            run(kubectl, f"--kubeconfig={kubeconfig}", "-n", namespace, "delete", "pod", pod,
                "--grace-period=0", "--force", "--wait=false")  # fmt: skip

        yield Cluster(
            backend="kind",
            kubeconfig=kubeconfig,
            kubectl_bin=kubectl,
            helm_bin=shutil.which("helm") or str(find_helm()),
            image_repository="wio",
            image_tag="e2e",
            audit_log=None,
            kill=force_delete,
        )
    finally:
        if not request.config.getoption("keep_cluster", default=False):
            cluster.delete()


@pytest.fixture(scope="module", params=["node", "kind"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp(f"e2e-{request.param}")
    backend = _node_backend(tmp) if request.param == "node" else _kind_backend(request, tmp)
    with backend as ready:
        yield ready
