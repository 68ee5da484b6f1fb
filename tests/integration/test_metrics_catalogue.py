# SPDX-License-Identifier: Apache-2.0
"""Every metric the alerts and the dashboard query is one wio exports, and the chart ships them.

A rule or a panel on a misspelt or renamed metric never fires and never draws: nothing else
would notice. The metric names are read out of the PromQL of deploy/prometheus-rules.yaml and
of the dashboard's panels, and each must appear as a ``# TYPE`` line on the session operator's
``/metrics`` (its operations port), scraped once it holds an X.509 and a JWT credential (so the
per-credential families have series). The chart renders the PrometheusRule (the same groups as
the plain file), the ServiceMonitor and the dashboard's ConfigMap when, and only when, they are
enabled.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.integration.test_chart import CHART, render
from tests.support.cluster import REPO
from tests.support.identities import create_identity, wait_condition
from tests.support.operator import InProcessOperator
from wio.devcluster.binaries import kubernetes_version

pytestmark = pytest.mark.integration

RULES = REPO / "deploy" / "prometheus-rules.yaml"
DASHBOARD = CHART / "dashboards" / "wio.json"
METRIC = re.compile(r"\bwio_[a-z_]+")
#: A histogram is declared once (``# TYPE name histogram``) and queried through its series.
SERIES_SUFFIX = re.compile(r"_(bucket|sum|count)$")
ENABLE_ALL = (
    "prometheusRule.enabled=true",
    "serviceMonitor.enabled=true",
    "grafanaDashboard.enabled=true",
)


def _panel_targets(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield from panel.get("targets", [])
        yield from _panel_targets(panel.get("panels", []))  # panels inside a collapsed row


def _queried_metrics() -> dict[str, set[str]]:
    """Metric name → where it is queried (alert names, panel titles' queries)."""
    exprs: list[tuple[str, str]] = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        exprs += [(f"alert {rule['alert']}", rule["expr"]) for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [("dashboard", target["expr"]) for target in _panel_targets(dashboard["panels"])]
    used: dict[str, set[str]] = {}
    for where, expr in exprs:
        for name in METRIC.findall(expr):
            used.setdefault(SERIES_SUFFIX.sub("", name), set()).add(where)
    return used


def _exported_families(operator: InProcessOperator) -> set[str]:
    with urllib.request.urlopen(f"{operator.ops_url}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_every_metric_the_alerts_and_the_dashboard_query_is_exported(
    operator: InProcessOperator, kube: client.ApiClient, namespace: str
) -> None:
    create_identity(
        kube,
        namespace,
        "catalogue",
        {"serviceAccountName": "catalogue", "jwt": {"audiences": ["a"]}},
    )
    wait_condition(kube, namespace, "catalogue", "Ready", "True")
    used = _queried_metrics()
    assert len(used) >= 10, f"the regex found too few metric names: {sorted(used)}"
    exported = _exported_families(operator)
    missing = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert not missing, f"queried but not exported by wio: {missing}"


def test_the_monitoring_objects_are_rendered_only_when_enabled(helm: Path) -> None:
    monitoring = {
        ("PrometheusRule", "wio"),
        ("ServiceMonitor", "wio"),
        ("ConfigMap", "wio-dashboard"),
    }
    defaults = {(d["kind"], d["metadata"]["name"]) for d in render(helm, "wio-system")}
    assert not defaults & monitoring
    docs = render(helm, "wio-system", *ENABLE_ALL)
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}

    rule = by_kind[("PrometheusRule", "wio")]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]

    monitor = by_kind[("ServiceMonitor", "wio")]
    service = by_kind[("Service", "wio")]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "30s"}

    dashboard = by_kind[("ConfigMap", "wio-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["wio.json"]) == json.loads(DASHBOARD.read_text())


def test_the_chart_with_monitoring_enabled_passes_helm_lint_strict(helm: Path) -> None:
    argv = [helm, "lint", "--strict", CHART, "--kube-version", kubernetes_version()]
    for setting in ENABLE_ALL:
        argv += ["--set", setting]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
