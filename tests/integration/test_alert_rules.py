# SPDX-License-Identifier: Apache-2.0
"""wio's alert rules, checked and unit-tested by Prometheus's own promtool.

``promtool check rules`` parses every expression and template of deploy/prometheus-rules.yaml;
``promtool test rules`` runs tests/alerts/*.test.yaml, where each alert has a case that fires
and one that does not (five failed authentications a minute do not page, six do). promtool is
the pinned release built by ``wio.devcluster`` (``python -m wio.devcluster build``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.cluster import REPO, missing_prerequisite
from wio.devcluster import Unavailable
from wio.devcluster.binaries import find_promtool

pytestmark = pytest.mark.integration

RULES = REPO / "deploy" / "prometheus-rules.yaml"
ALERT_TESTS = sorted((REPO / "tests" / "alerts").glob("*.test.yaml"))


@pytest.fixture(scope="module")
def promtool() -> Path:
    try:
        return find_promtool(build=False)
    except Unavailable as err:
        missing_prerequisite(str(err))
        raise  # unreachable: missing_prerequisite always raises


def _promtool(promtool: Path, *args: str | Path) -> str:
    done = subprocess.run(
        [promtool, *args], capture_output=True, text=True, check=False, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, f"promtool {args[0]} {args[1]} failed:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def test_the_rules_file_passes_promtool_check_rules(promtool: Path) -> None:
    out = _promtool(promtool, "check", "rules", "--lint-fatal", RULES)
    assert "SUCCESS" in out, out


def test_every_alert_fires_and_stays_quiet_where_its_unit_tests_say(promtool: Path) -> None:
    assert ALERT_TESTS, "no tests/alerts/*.test.yaml"
    out = _promtool(promtool, "test", "rules", *ALERT_TESTS)
    assert "SUCCESS" in out, out


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in ALERT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert not alerts - fires, f"no case where these fire: {sorted(alerts - fires)}"
    assert not alerts - quiet, f"no case where these stay quiet: {sorted(alerts - quiet)}"
