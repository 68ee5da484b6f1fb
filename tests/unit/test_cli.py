# SPDX-License-Identifier: Apache-2.0
"""`wio run` refuses a bad admin configuration at start: a message naming the field, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cluster import REPO

pytestmark = pytest.mark.unit


def _run(config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIO_") and k != "KUBECONFIG"}
    env["PYTHONPATH"] = str(REPO / "operator")
    return subprocess.run(
        [sys.executable, "-m", "wio", "run", f"--config={config}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("trustDomain: Example.ORG\njwtIssuer: https://wio.example.org\n", "trustDomain"),
        ("trustDomain: example.org\n", "jwtIssuer"),
        (
            "trustDomain: example.org\njwtIssuer: https://wio.example.org\nrotaton: {}\n",
            "rotaton",
        ),
        (
            "trustDomain: example.org\njwtIssuer: https://wio.example.org\n"
            "rotation: {fraction: 1.5}\n",
            "rotation.fraction",
        ),
    ],
)
def test_a_bad_configuration_stops_the_operator_naming_the_field(
    tmp_path: Path, document: str, field: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(document)
    result = _run(config)
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert field in result.stderr
