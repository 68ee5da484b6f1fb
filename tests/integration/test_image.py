# SPDX-License-Identifier: Apache-2.0
"""The operator image, built here with no registry, checked from outside.

``wio.devcluster.image.build_image`` builds the Dockerfile on a locally made Debian base and
saves a docker-archive (what the e2e tier imports into containerd). The archive's own image
configuration must say uid 10001 and ``wio run``; the image, loaded back into the project's
Docker engine, must run that command with no network, and refuse a bad configuration with
exit code 2 and the reason.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import REPO, in_ci
from wio.devcluster import Unavailable
from wio.devcluster.image import DEFAULT_TAG, DOCKER, DockerEngine, build_image

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def archive() -> Path:
    try:
        return build_image(REPO)
    except Unavailable as err:
        if in_ci():
            pytest.fail(f"CI=true and the image cannot be built here: {err}", pytrace=False)
        pytest.skip(f"the image cannot be built here: {err}")


@pytest.fixture(scope="module")
def engine(archive: Path) -> Iterator[DockerEngine]:
    """The project's engine with the archive loaded, so what runs is what was saved."""
    with DockerEngine() as running:
        running.docker("load", "--input", str(archive), what="loading the saved image")
        yield running


def _image_config(archive: Path) -> dict[str, Any]:
    """The image configuration inside a docker-archive, read as containerd's import reads it."""
    with tarfile.open(archive) as tar:
        manifest = json.load(_member(tar, "manifest.json"))
        assert len(manifest) == 1, f"expected one image in {archive.name}"
        assert DEFAULT_TAG in manifest[0]["RepoTags"]
        config: dict[str, Any] = json.load(_member(tar, manifest[0]["Config"]))
    return config


def _member(tar: tarfile.TarFile, name: str) -> Any:
    handle = tar.extractfile(name)
    assert handle is not None, f"{name} is not a file in the archive"
    return handle


def _run(engine: DockerEngine, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCKER), "run", "--rm", "--network=none", *args],
        env=engine.client_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_archive_says_wio_run_as_uid_10001(archive: Path) -> None:
    config = _image_config(archive)["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["wio", "run"]
    assert set(config["ExposedPorts"]) == {"8443/tcp", "9090/tcp"}


def test_the_container_runs_wio_run_with_no_network(engine: DockerEngine) -> None:
    done = _run(engine, DEFAULT_TAG, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: wio run")


def test_the_container_process_is_uid_10001_and_cannot_change_the_operator(
    engine: DockerEngine,
) -> None:
    done = _run(engine, "--entrypoint=sh", DEFAULT_TAG, "-c", "id -u; touch /opt/wio/x")
    assert done.stdout.split() == ["10001"]
    assert done.returncode != 0
    assert "Permission denied" in done.stderr


def test_a_missing_config_file_exits_2_and_says_why(engine: DockerEngine) -> None:
    done = _run(engine, DEFAULT_TAG, "--config", "/etc/wio/absent.yaml")
    assert done.returncode == 2
    assert "wio: invalid configuration" in done.stderr
    assert "/etc/wio/absent.yaml: cannot read the configuration file" in done.stderr
