# SPDX-License-Identifier: Apache-2.0
"""The import-linter contracts hold, and they really fail when a layer is broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root / "operator")},
        capture_output=True,
        text=True,
    )


def _copy_tree(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "operator", tmp_path / "operator", ignore=shutil.ignore_patterns("gomod")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_contracts_hold_on_the_tree(tmp_path: Path) -> None:
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("issuing/keys.py", "import kopf", "Pure logic imports no framework"),
        ("models/spiffe.py", "import hvac", "hvac is imported only by the backends"),
        ("policy/rotation.py", "import wio.backends", "Layers of ARCHITECTURE.md"),
        # The pure layer is ordered: each line below imports upward or sideways.
        ("policy/checks.py", "import wio.config", "Layers of ARCHITECTURE.md"),
        ("config.py", "import wio.policy", "Layers of ARCHITECTURE.md"),
        ("issuing/keys.py", "import wio.policy", "Layers of ARCHITECTURE.md"),
        ("models/resources.py", "import wio.issuing", "Layers of ARCHITECTURE.md"),
        ("models/spiffe.py", "import wio.config", "Layers of ARCHITECTURE.md"),
        ("names.py", "import wio.errors", "Layers of ARCHITECTURE.md"),
        ("clock.py", "import wio.names", "Layers of ARCHITECTURE.md"),
    ],
)
def test_a_broken_layer_fails_the_lint(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    root = _copy_tree(tmp_path)
    target = root / "operator" / "wio" / module
    target.write_text(target.read_text() + f"\n{line}  # planted by the test\n")
    result = _lint(root)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout
    assert "BROKEN" in result.stdout
