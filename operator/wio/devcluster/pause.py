# SPDX-License-Identifier: Apache-2.0
"""The node's pause (pod sandbox) image, made here because there is no registry to pull from.

Every pod's sandbox runs an image that only has to sleep until told to stop. We build a tiny
static Go program that does exactly that and pack it as a single-layer ``docker save`` archive,
which ``ctr images import`` accepts. Both are cached next to the Kubernetes binaries, keyed by
the program and the Go version, so only the first run on a machine pays (a few seconds).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

from wio.devcluster.binaries import MIN_GO, Unavailable, build_lock, cache_root, why_no_go

#: The image's name: in a domain no registry serves, so nothing ever tries to pull it.
PAUSE_IMAGE = "wio.local/pause:1"

# PID 1 of a pod: sleep until SIGINT/SIGTERM, and let the kernel reap orphans (SIGCHLD ignored)
# so a pod sharing its process namespace never accumulates zombies.
_PROGRAM = """package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signal.Ignore(syscall.SIGCHLD)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
"""


def _go_env(name: str) -> str:
    return subprocess.run(
        ["go", "env", name],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    ).stdout.strip()


def pause_archive() -> Path:
    """The pause image as a docker-archive tar: from the cache, else built once with Go."""
    reason = why_no_go("the pause image", cache_root() / "pause", MIN_GO, "the pause image")
    if reason:
        raise Unavailable(reason)
    key = hashlib.sha256(f"{_PROGRAM}\n{_go_env('GOVERSION')}".encode()).hexdigest()[:12]
    target = cache_root() / "pause" / key
    archive = target / "pause.tar"
    if archive.is_file():
        return archive
    with build_lock(target):
        if archive.is_file():
            return archive
        with tempfile.TemporaryDirectory(prefix="wio-pause-") as tmp:
            work = Path(tmp)
            (work / "go.mod").write_text("module wio.dev/pause\n\ngo 1.21\n")
            (work / "main.go").write_text(_PROGRAM)
            env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": ""}
            result = subprocess.run(
                ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", "pause", "."],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise Unavailable(
                    f"building the pause program failed (go exit {result.returncode}):\n"
                    + result.stderr[-4000:]
                )
            data = docker_archive(PAUSE_IMAGE, (work / "pause").read_bytes(), _go_env("GOARCH"))
        target.mkdir(parents=True, exist_ok=True)
        partial = target / "pause.tar.partial"
        partial.write_bytes(data)
        os.replace(partial, archive)
    return archive


def _tar(members: dict[str, tuple[bytes, int]]) -> bytes:
    """A reproducible tar of ``name → (content, mode)``: fixed owner and time."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, (content, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), mode, 0
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def docker_archive(reference: str, program: bytes, architecture: str) -> bytes:
    """A ``docker save``-format archive of one image whose only file is ``/pause``."""
    layer = _tar({"pause": (program, 0o755)})
    layer_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {"Entrypoint": ["/pause"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        },
        sort_keys=True,
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [reference], "Layers": [f"{layer_id}/layer.tar"]}]
    ).encode()
    return _tar(
        {
            f"{layer_id}/layer.tar": (layer, 0o644),
            config_name: (config, 0o644),
            "manifest.json": (manifest, 0o644),
        }
    )
