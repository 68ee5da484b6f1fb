# SPDX-License-Identifier: Apache-2.0
"""Build the operator's container image on a machine that reaches no container registry.

The e2e tier imports the image into a kubelet's containerd, so it needs a docker-archive of
the project's ``Dockerfile`` built here, where ``python:3.11-slim`` cannot be pulled. Three
pieces, each cached so only the first run on a machine pays for it:

* ``DockerEngine``: Debian's ``dockerd`` (package ``docker.io``) on a socket, data root and
  exec root of its own under ``$XDG_CACHE_HOME/wio/docker/``, so it never meets another Docker
  on the machine. It creates no bridge and touches no iptables rules or sysctls: builds use
  the host's network (``--network host``) and test containers run with ``--network none``.
* the base image: Debian bookworm (python3 3.11, as in ``python:3.11-slim``) made by
  ``mmdebstrap`` from the host's own apt mirror and ``docker import``-ed as ``wio-base:<key>``,
  the key hashing suite, packages and apt sources.
* ``build_image``: ``docker build`` with that base, then ``docker save`` to
  ``$XDG_CACHE_HOME/wio/images/<tag>-<source digest>.tar`` (what ``ctr images import`` takes).
  The digest covers every file that goes into the build context and the base, so an unchanged
  tree returns the archive without starting an engine.

``why_not_buildable`` says why none of this can run here (not root, no apt), or None; every
failing step raises ``ImageBuildFailed`` with the tail of its log.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from wio.devcluster.binaries import Unavailable, cache_root
from wio.devcluster.packages import IMAGE_PACKAGES, ensure_packages, missing_packages
from wio.devcluster.packages import why_not_installable as _why_no_apt
from wio.devcluster.processes import ManagedProcess, ProcessFailed

# Debian's engine and client (package docker.io). Named explicitly: another `docker` may come
# first on PATH, and a client without BuildKit cannot build the Dockerfile's `RUN --mount`.
DOCKERD = Path("/usr/sbin/dockerd")
DOCKER = Path("/usr/bin/docker")
#: bookworm's python3 is 3.11, the version the default base (python:3.11-slim) carries.
BASE_SUITE = "bookworm"
#: What the Dockerfile needs from its base: python3 able to make a venv, and CA certificates
#: for the operator's TLS (groupadd/useradd come with minbase's required `passwd`).
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_TAG = "wio:dev"
#: Image label recording the source digest an image was built from.
SOURCE_LABEL = "dev.wio.source-digest"
# Files outside `operator/` that go into the build context (see .dockerignore).
_CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
# Left out of the context by .dockerignore, so left out of the digest too.
_IGNORED_DIRS = ("__pycache__",)
_IGNORED_SUFFIXES = (".pyc", ".egg-info")
# dpkg paths the base does without (documentation, manual pages, translations).
_DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
)
# sockaddr_un holds 108 bytes; containerd's ttrpc socket is the longest path under exec-root.
_MAX_SOCKET_PATH = 107


class ImageBuildFailed(Exception):
    """A step of making the image failed; the message carries the step's log tail."""


def docker_root() -> Path:
    """Where the engine keeps its data, run-time state, log and client configuration."""
    return cache_root() / "docker"


def images_dir() -> Path:
    """Where saved image archives are kept, one per tag and source digest."""
    return cache_root() / "images"


def why_not_buildable() -> str | None:
    """Why the image cannot be built on this machine, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "building the image needs Linux (Debian's dockerd and mmdebstrap)"
    missing = missing_packages(IMAGE_PACKAGES)
    if missing:
        reason = _why_no_apt()
        if reason is not None:
            return f"Debian packages {', '.join(missing)} are missing and {reason}"
    if os.geteuid() != 0:
        return "not root (dockerd and mmdebstrap's chroot need root)"
    return None


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _say(message: str) -> None:
    print(f"wio.devcluster: {message}", file=sys.stderr, flush=True)


class DockerEngine:
    """Debian's dockerd on its own socket and directories, for as long as the context lasts.

    One engine per data root: an exclusive lock is held for the engine's lifetime, so a second
    run waits for the first to finish instead of starting a second daemon on the same data.
    The daemon dies with this process (see ``wio.devcluster.processes``); what a killed run
    leaves behind (pidfile, socket, an orphaned daemon) is cleared on the next start.
    """

    def __init__(
        self, root: Path | None = None, *, start_timeout: float = 60.0, lock_timeout: float = 900.0
    ) -> None:
        self.root = root or docker_root()
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.socket = self.root / "docker.sock"
        self.pidfile = self.root / "docker.pid"
        self.log_path = self.root / "dockerd.log"
        self._start_timeout = start_timeout
        self._lock_timeout = lock_timeout
        self._lock: IO[str] | None = None
        self._process: ManagedProcess | None = None
        self.startup_seconds = 0.0

    def __enter__(self) -> DockerEngine:
        longest = self.exec_root / "containerd" / "containerd.sock.ttrpc"
        if len(str(longest)) > _MAX_SOCKET_PATH:
            raise Unavailable(
                f"{self.root} is too deep for the engine's unix sockets; set XDG_CACHE_HOME "
                "to a shorter directory"
            )
        for directory in (self.data_root, self.exec_root, self.root / "client"):
            directory.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._start()
        except BaseException:
            self._release_lock()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._process is not None:
                # dockerd unmounts its layers and stops its containerd on SIGTERM; give it time.
                self._process.stop(grace=30.0)
                self._process = None
        finally:
            self._release_lock()

    def _acquire_lock(self) -> None:
        lock = open(self.root / "engine.lock", "w")  # noqa: SIM115 - closed in _release_lock
        deadline = time.monotonic() + self._lock_timeout
        waiting = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise Unavailable(
                        f"another run kept the Docker engine at {self.root} busy for "
                        f"{self._lock_timeout:.0f}s"
                    ) from None
                if not waiting:
                    _say(f"waiting for another run's Docker engine at {self.root}")
                    waiting = True
                time.sleep(1.0)
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _clear_stale(self) -> None:
        """Remove what an earlier run left behind, so dockerd can start on our directories.

        We hold the lock, so a daemon still running on our data root is an orphan; a stale
        pidfile or socket would make dockerd refuse to start.
        """
        for pid in self._orphans():
            _say(f"stopping an orphaned dockerd (pid {pid}) left by an earlier run")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30.0
            while self._is_our_daemon(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if self._is_our_daemon(pid):
                os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)
        self.log_path.unlink(missing_ok=True)

    def _orphans(self) -> list[int]:
        # Every process, not just the pidfile's: a failed start may have removed the pidfile.
        pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
        return [pid for pid in pids if self._is_our_daemon(pid)]

    def _is_our_daemon(self, pid: int) -> bool:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return Path(os.fsdecode(argv[0])).name == DOCKERD.name and (
            f"--data-root={self.data_root}".encode() in argv
        )

    def _start(self) -> None:
        self._clear_stale()
        config = self.root / "daemon.json"
        # An empty configuration of our own, so /etc/docker/daemon.json never applies.
        config.write_text("{}\n")
        argv = [
            str(DOCKERD),
            f"--config-file={config}",
            f"--host=unix://{self.socket}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            # No docker0 bridge, no iptables rules, no ip_forward sysctl: the engine changes
            # nothing on the machine's network (builds use the host network).
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            # The kubelet here uses cgroupfs too; one driver for the machine.
            "--exec-opt=native.cgroupdriver=cgroupfs",
        ]
        # dockerd starts a containerd of its own under exec-root, unless a system containerd
        # answers on its default socket: then it uses that one (in its own `moby` namespace).
        began = time.monotonic()
        process = ManagedProcess("dockerd", argv, self.log_path, dict(os.environ))
        self._process = process
        try:
            process.wait_ready(self._answers, timeout=self._start_timeout)
        except ProcessFailed as err:
            process.stop()
            self._process = None
            raise ImageBuildFailed(str(err)) from err
        self.startup_seconds = time.monotonic() - began

    def _answers(self) -> bool:
        """True when the engine answers its ping endpoint on our socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2.0)
            conn.connect(str(self.socket))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return conn.recv(64).split(b"\r\n", 1)[0].endswith(b" 200 OK")

    def client_env(self) -> dict[str, str]:
        """The environment for Debian's docker client talking to this engine only."""
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
        }
        env["DOCKER_HOST"] = f"unix://{self.socket}"
        # A client configuration of our own: no credential helpers or contexts of the machine.
        env["DOCKER_CONFIG"] = str(self.root / "client")
        env["DOCKER_BUILDKIT"] = "1"
        return env

    def docker(self, *args: str, what: str, timeout: float = 600.0) -> str:
        """Run ``docker args``; its stdout, or ``ImageBuildFailed`` saying ``what`` failed."""
        argv = [str(DOCKER), *args]
        try:
            done = subprocess.run(
                argv, env=self.client_env(), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as err:
            raise ImageBuildFailed(f"{what}: `docker {args[0]}` took over {timeout:.0f}s") from err
        if done.returncode != 0:
            raise ImageBuildFailed(
                f"{what}: `docker {' '.join(args)}` failed (exit {done.returncode}):\n"
                + _tail(done.stdout + done.stderr)
            )
        return done.stdout

    def label(self, image: str, key: str) -> str | None:
        """The value of label ``key`` on ``image``; None when either is absent."""
        done = subprocess.run(
            [str(DOCKER), "image", "inspect", "--format", "{{json .Config.Labels}}", image],
            env=self.client_env(),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return None
        labels = json.loads(done.stdout) or {}
        value = labels.get(key)
        return value if isinstance(value, str) else None

    def has_image(self, image: str) -> bool:
        done = subprocess.run(
            [str(DOCKER), "image", "inspect", image],
            env=self.client_env(),
            capture_output=True,
        )
        return done.returncode == 0


# -- the base image ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` entry of the host's apt sources, reduced to what mmdebstrap needs."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None

    def deb822(self) -> str:
        lines = [
            "Types: deb",
            f"URIs: {self.uri}",
            f"Suites: {' '.join(self.suites)}",
            f"Components: {' '.join(self.components)}",
        ]
        if self.signed_by is not None:
            lines.append(f"Signed-By: {self.signed_by}")
        return "\n".join(lines) + "\n"


def _parse_deb822(text: str) -> list[AptSource]:
    found: list[AptSource] = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                # A continuation line (an inline Signed-By key block).
                fields[key] += "\n" + line
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            found.append(
                AptSource(
                    uri=uri,
                    suites=tuple(fields.get("suites", "").split()),
                    components=tuple(fields.get("components", "").split()),
                    signed_by=fields.get("signed-by"),
                )
            )
    return found


def _parse_one_line(text: str) -> list[AptSource]:
    found: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = line.split()[1:]
        options: dict[str, str] = {}
        if words and words[0].startswith("["):
            closing = next((i for i, word in enumerate(words) if word.endswith("]")), None)
            if closing is None:
                continue
            for option in " ".join(words[: closing + 1]).strip("[]").split():
                name, _, value = option.partition("=")
                options[name] = value
            words = words[closing + 1 :]
        if len(words) >= 2:
            found.append(
                AptSource(
                    uri=words[0],
                    suites=(words[1],),
                    components=tuple(words[2:]),
                    signed_by=options.get("signed-by"),
                )
            )
    return found


def host_apt_sources(suite: str = BASE_SUITE, etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """The host's enabled ``deb`` entries for ``suite`` and its companions (-updates, -security).

    The base comes from the mirror the machine already uses, whatever that is (a local mirror,
    a snapshot, a proxy); other repositories the host has configured stay out of the image.
    """
    entries: list[AptSource] = []
    one_line = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            entries += _parse_one_line(path.read_text())
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        entries += _parse_deb822(path.read_text())
    matching: list[AptSource] = []
    for entry in entries:
        suites = tuple(s for s in entry.suites if s == suite or s.startswith(f"{suite}-"))
        if suites:
            matching.append(
                AptSource(entry.uri, suites, entry.components or ("main",), entry.signed_by)
            )
    return matching


def base_image_tag(sources: list[AptSource]) -> str:
    """``wio-base:<key>``: the key changes with the suite, the packages or the mirror."""
    digest = hashlib.sha256()
    digest.update(f"{BASE_SUITE}\n{' '.join(BASE_PACKAGES)}\n{' '.join(_DPKG_EXCLUDES)}\n".encode())
    for source in sources:
        digest.update(source.deb822().encode())
    return f"wio-base:{digest.hexdigest()[:12]}"


def _sources_or_raise() -> list[AptSource]:
    sources = host_apt_sources()
    if not sources:
        raise Unavailable(
            f"the host's apt sources (/etc/apt) list no {BASE_SUITE} suite to make the "
            "image's base from"
        )
    return sources


def ensure_base_image(engine: DockerEngine) -> str:
    """The tag of the local Debian base in ``engine``, made with mmdebstrap if it is not there."""
    sources = _sources_or_raise()
    tag = base_image_tag(sources)
    if engine.has_image(tag):
        return tag
    _say(f"making the base image {tag} with mmdebstrap (Debian {BASE_SUITE}, once per machine)")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(dir=engine.root, prefix="base-") as scratch:
        # mmdebstrap reads a mirror argument that names a file as sources, deb822 by suffix.
        sources_file = Path(scratch) / "host.sources"
        sources_file.write_text("\n".join(source.deb822() for source in sources))
        tarball = Path(scratch) / "rootfs.tar"
        argv = [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            *(f"--dpkgopt={option}" for option in _DPKG_EXCLUDES),
            BASE_SUITE,
            str(tarball),
            str(sources_file),
        ]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise ImageBuildFailed(
                f"mmdebstrap of the base failed (exit {done.returncode}):\n"
                + _tail(done.stdout + done.stderr)
            )
        made = time.monotonic()
        engine.docker(
            "import",
            # An imported root file system has no configuration; give it what the
            # python:3.11-slim image sets, so both bases behave alike.
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "ENV LANG=C.UTF-8",
            str(tarball),
            tag,
            what="importing the base image",
        )
    _say(
        f"base image {tag} made in {made - began:.0f}s, imported in {time.monotonic() - made:.0f}s"
    )
    return tag


# -- the operator image -----------------------------------------------------------------------


def source_digest(repo_root: Path, base: str) -> str:
    """Hash of everything the build reads: the context's files (names and bytes) and the base."""
    digest = hashlib.sha256(f"base {base}\n".encode())
    paths = [repo_root / name for name in _CONTEXT_FILES]
    for directory, dirnames, filenames in os.walk(repo_root / "operator"):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _IGNORED_DIRS and not d.endswith(_IGNORED_SUFFIXES)
        )
        paths += [Path(directory) / f for f in filenames if not f.endswith(_IGNORED_SUFFIXES)]
    for path in sorted(paths):
        if path.is_file():
            digest.update(f"{path.relative_to(repo_root)}\0{path.stat().st_size}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _ca_bundle() -> Path | None:
    """The CA bundle the host's pip trusts, for pip inside the build (TLS-inspecting proxies)."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        ssl.get_default_verify_paths().cafile,
        ssl.get_default_verify_paths().openssl_cafile,
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def archive_path(tag: str, digest: str) -> Path:
    return images_dir() / f"{tag.replace('/', '_').replace(':', '_')}-{digest[:16]}.tar"


def build_image(repo_root: Path, tag: str = DEFAULT_TAG) -> Path:
    """Build ``repo_root``'s Dockerfile as ``tag`` on the local base; the saved archive's path.

    Raises ``Unavailable`` when this machine cannot build it (``why_not_buildable``) and
    ``ImageBuildFailed`` when a step fails. An archive already saved for the same sources and
    base is returned as it is, without starting an engine.
    """
    reason = why_not_buildable()
    if reason is not None:
        raise Unavailable(reason)
    digest = source_digest(repo_root, base_image_tag(_sources_or_raise()))
    archive = archive_path(tag, digest)
    if archive.is_file():
        return archive
    ensure_packages(IMAGE_PACKAGES)
    with DockerEngine() as engine:
        base = ensure_base_image(engine)
        if engine.label(tag, SOURCE_LABEL) != digest:
            _build(engine, repo_root, tag, base, digest)
        began = time.monotonic()
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        engine.docker("save", "--output", str(partial), tag, what=f"saving {tag}")
        partial.replace(archive)
        _say(f"saved {tag} to {archive.name} in {time.monotonic() - began:.0f}s")
    # Archives of earlier sources for this tag are stale; one per tag is enough.
    for old in archive.parent.glob(archive_path(tag, "?" * 16).name):
        if old != archive:
            old.unlink(missing_ok=True)
    return archive


def _build(engine: DockerEngine, repo_root: Path, tag: str, base: str, digest: str) -> None:
    _say(f"building {tag} on {base}")
    began = time.monotonic()
    argv = [
        "build",
        "--progress=plain",
        # The engine has no bridge; RUN steps (pip) use the host's network.
        "--network=host",
        f"--build-arg=BASE_IMAGE={base}",
        f"--label={SOURCE_LABEL}={digest}",
        f"--tag={tag}",
    ]
    bundle = _ca_bundle()
    if bundle is not None:
        argv.append(f"--secret=id=ca-bundle,src={bundle}")
    engine.docker(*argv, str(repo_root), what=f"building {tag}", timeout=1800.0)
    # The image this tag named before is now untagged; without this every rebuild would keep
    # another copy of the operator's layer in the data root.
    engine.docker(
        "image",
        "prune",
        "--force",
        f"--filter=label={SOURCE_LABEL}",
        what="removing superseded images",
    )
    _say(f"built {tag} in {time.monotonic() - began:.0f}s")
