# SPDX-License-Identifier: Apache-2.0
"""The install manifests (deploy/, charts/wio/, Dockerfile) say what the operator needs, safely.

Pure file checks: every document parses; the pod runs unprivileged and read-only; RBAC has no
wildcards and the chart grants exactly what deploy/rbac.yaml grants; the chart ships the same
CRDs as crds/; the shipped configuration is one the operator accepts. There is no helm binary
here, so chart templates are rendered by ``_render`` below: a deliberately small evaluator for
the handful of template forms the chart uses, which refuses any form it does not know.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from wio.config import AdminConfig, parse_config

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = REPO / "charts" / "wio"
RELEASE_NAMESPACE = "wio-system"
CONFIG_PATH = "/etc/wio/config.yaml"
CLUSTER_SCOPED = (
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
)


# -- loading ----------------------------------------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _deploy_docs() -> list[dict[str, Any]]:
    return [doc for path in sorted(DEPLOY.glob("*.yaml")) for doc in _documents(path)]


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# -- a minimal Helm renderer ------------------------------------------------------------------

_COMMENT = re.compile(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", re.DOTALL)
_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_LABEL_INCLUDES = ('include "wio.labels" .', 'include "wio.selectorLabels" .')
_UNSET = object()


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    current: Any = values
    for key in dotted.split("."):
        if not isinstance(current, dict) or key not in current:
            return None
        current = current[key]
    return current


def _block(value: Any, filters: list[str]) -> str:
    indent = re.fullmatch(r"nindent (\d+)", filters[0]) if len(filters) == 1 else None
    if indent is None:
        raise ValueError(f"toYaml is only rendered with one nindent here, not {filters}")
    pad = " " * int(indent.group(1))
    dumped = yaml.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip()
    return "\n" + "\n".join(pad + line for line in dumped.splitlines())


def _evaluate(expression: str, values: dict[str, Any], chart: dict[str, Any], dot: Any) -> Any:
    """One inline action of the forms the chart uses; anything else is refused."""
    head, *filters = [part.strip() for part in expression.split("|")]
    value: Any
    if head in _LABEL_INCLUDES:
        return _UNSET  # labels: not what these tests check; the line is dropped
    if head == "toYaml .":
        return _block(dot, filters)
    if head.startswith("toYaml .Values."):
        return _block(_lookup(values, head.removeprefix("toYaml .Values.")), filters)
    if head == ".":
        value = dot
    elif head == ".Release.Namespace":
        value = RELEASE_NAMESPACE
    elif head == 'include "wio.image" .':
        value = f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"
    elif head == 'include "wio.httpPort" .':
        value = (values["config"].get("http") or {}).get("port", 8080)
    elif head == 'include (print $.Template.BasePath "/configmap.yaml") .':
        value = "a-checksum"
    elif head.startswith(".Values."):
        value = _lookup(values, head.removeprefix(".Values."))
    else:
        raise ValueError(f"the test renderer does not know {expression!r}")
    for filter_ in filters:
        default = re.fullmatch(r'default "([^"]*)"', filter_)
        if default:
            value = value if value not in (None, "") else default.group(1)
        elif filter_ == "quote":
            value = f'"{value}"'
        elif filter_ != "sha256sum":
            raise ValueError(f"the test renderer does not know the filter {filter_!r}")
    return str(value)


def _render(template: Path) -> list[dict[str, Any]]:
    """Render one chart template with values.yaml into the release namespace wio-system.

    Knows ``with .Values.x`` blocks (skipped when empty, ``.`` bound inside), ``toYaml |
    nindent``, ``default``/``quote``, the chart's helpers, and nothing else: an unknown form
    fails the test rather than being guessed at.
    """
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    text = _COMMENT.sub("", template.read_text())
    # (active, dot) per open `with` block
    stack: list[tuple[bool, Any]] = [(True, None)]
    lines: list[str] = []
    for line in text.splitlines():
        actions = list(_ACTION.finditer(line))
        control = len(actions) == 1 and line.strip() == actions[0].group(0)
        keyword = actions[0].group(1).split(" ", 1)[0] if control else ""
        if keyword == "with":
            value = _lookup(values, actions[0].group(1).split(" ", 1)[1].removeprefix(".Values."))
            stack.append((stack[-1][0] and bool(value), value))
            continue
        if keyword == "end":
            stack.pop()
            continue
        if keyword in ("if", "else", "range", "define", "fail", "template"):
            raise ValueError(f"{template.name}: the test renderer does not know {line!r}")
        active, dot = stack[-1]
        if not active:
            continue
        rendered = line
        for action in actions:
            result = _evaluate(action.group(1), values, chart, dot)
            if result is _UNSET:
                if not control:
                    raise ValueError(f"{template.name}: a dropped action shares {line!r}")
                rendered = ""
            elif result.startswith("\n"):  # toYaml | nindent: a block after the key
                rendered = rendered[: action.start()].rstrip() + result
            else:
                rendered = rendered.replace(action.group(0), result, 1)
        if rendered.strip():
            lines.append(rendered.lstrip("\n") if control else rendered)
    assert len(stack) == 1, f"{template.name}: unbalanced with/end"
    return [doc for doc in yaml.safe_load_all("\n".join(lines)) if doc is not None]


def _chart_docs() -> list[dict[str, Any]]:
    return [doc for path in sorted((CHART / "templates").glob("*.yaml")) for doc in _render(path)]


# -- every file parses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted(DEPLOY.rglob("*.yaml"))
    + sorted((CHART / "crds").glob("*.yaml"))
    + [CHART / "Chart.yaml", CHART / "values.yaml"],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_manifest_parses_as_yaml(path: Path) -> None:
    docs = _documents(path)
    assert docs
    if path.parent.name != "wio":  # Chart.yaml and values.yaml are not Kubernetes objects
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc)
            assert doc["metadata"]["name"]


@pytest.mark.parametrize(
    "template", sorted((CHART / "templates").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_chart_template_renders_to_kubernetes_objects(template: Path) -> None:
    docs = _render(template)
    assert docs
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc)
        assert doc["metadata"]["name"]
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == RELEASE_NAMESPACE


def test_chart_is_helm_v3_and_versioned_like_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "wio"
    assert chart["appVersion"] == project["version"]
    assert (CHART / "templates" / "NOTES.txt").read_text().strip()


# -- CRDs ---------------------------------------------------------------------------------------


def test_chart_crds_are_byte_identical_to_the_repository_crds() -> None:
    repo = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert sorted(chart) == sorted(repo), "run: cp crds/*.yaml charts/wio/crds/"
    stale = [name for name in repo if chart[name] != repo[name]]
    assert not stale, f"charts/wio/crds is stale for {stale}; run: cp crds/*.yaml charts/wio/crds/"


# -- the pod ------------------------------------------------------------------------------------


def _pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = _one(docs, "Deployment", "wio")["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("source", ["deploy", "chart"])
def test_operator_pod_runs_unprivileged_with_a_read_only_root(source: str) -> None:
    docs = _deploy_docs() if source == "deploy" else _chart_docs()
    deployment = _one(docs, "Deployment", "wio")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = _pod_spec(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == "wio"
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert not context["capabilities"].get("add")
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])


@pytest.mark.parametrize("source", ["deploy", "chart"])
def test_operator_probes_port_and_config_mount_line_up(source: str) -> None:
    docs = _deploy_docs() if source == "deploy" else _chart_docs()
    pod = _pod_spec(docs)
    (container,) = pod["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = {e["name"]: e for e in container["env"]}
    assert env["WIO_CONFIG"]["value"] == CONFIG_PATH
    assert env["WIO_OPERATOR_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.namespace"
    )
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_mount = next(m for m in mounts.values() if CONFIG_PATH.startswith(m["mountPath"]))
    config_volume = volumes[config_mount["name"]]["configMap"]
    assert config_volume["name"] == "wio-config"
    assert config_volume["items"] == [{"key": "config.yaml", "path": "config.yaml"}]
    assert mounts["tmp"]["mountPath"] == "/tmp"  # the only writable path
    service = _one(docs, "Service", "wio")
    assert service["spec"]["ports"][0]["name"] == "http"
    assert service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def _shipped_config(source: str) -> AdminConfig:
    docs = _deploy_docs() if source == "deploy" else _chart_docs()
    text = _one(docs, "ConfigMap", "wio-config")["data"]["config.yaml"]
    return parse_config(yaml.safe_load(text), {})


@pytest.mark.parametrize("source", ["deploy", "chart"])
def test_shipped_configuration_is_accepted_with_the_local_default_signer(source: str) -> None:
    config = _shipped_config(source)
    assert config.trust_domain.name == "example.org"
    assert config.jwt_issuer == "https://wio.example.org"
    assert set(config.signers) == {"default"}
    assert config.http_port == 8080
    assert config.watch_namespaces == ()


def test_dockerfile_runs_wio_run_as_the_uid_of_the_pod() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert dockerfile.count("FROM python:3.11-slim") >= 1
    assert "USER 10001:10001" in dockerfile
    assert "EXPOSE 8080" in dockerfile
    assert 'ENTRYPOINT ["wio", "run"]' in dockerfile
    assert "[devcluster]" not in dockerfile  # no etcd or OpenBao in the image
    assert _pod_spec(_deploy_docs())["securityContext"]["runAsUser"] == 10001


# -- RBAC ---------------------------------------------------------------------------------------

_RBAC_KINDS = ("ClusterRole", "Role")


@pytest.mark.parametrize("source", ["deploy", "chart"])
def test_rbac_has_no_wildcards(source: str) -> None:
    docs = _deploy_docs() if source == "deploy" else _chart_docs()
    roles = [d for d in docs if d["kind"] in _RBAC_KINDS]
    assert {d["kind"] for d in roles} == set(_RBAC_KINDS)
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                for item in rule.get(field, []):
                    assert "*" not in item, f"{role['kind']} rule {rule} has a wildcard in {field}"
            assert "nonResourceURLs" not in rule


def test_rbac_never_reads_secrets_one_by_one_outside_the_operator_namespace() -> None:
    cluster_role = _one(_deploy_docs(), "ClusterRole", "wio")
    for rule in cluster_role["rules"]:
        if "secrets" in rule["resources"]:
            assert "get" not in rule["verbs"]
            assert set(rule["verbs"]) == {"list", "watch", "create", "patch", "delete"}
    verbs = {v for rule in cluster_role["rules"] for v in rule["verbs"]}
    assert not verbs & {"get", "deletecollection", "escalate", "bind", "impersonate"}
    # `update` only on the finalizers subresource (OwnerReferencesPermissionEnforcement).
    updates = [r for r in cluster_role["rules"] if "update" in r["verbs"]]
    assert all(res.endswith("/finalizers") for r in updates for res in r["resources"])
    resources = {res for rule in cluster_role["rules"] for res in rule["resources"]}
    assert "tokenreviews" not in resources


def test_role_names_the_state_objects_the_default_configuration_uses() -> None:
    defaults = parse_config({"trustDomain": "example.org", "jwtIssuer": "https://a.example"}, {})
    role = _one(_deploy_docs(), "Role", "wio")
    named = {
        (resource, name)
        for rule in role["rules"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames", [])
    }
    assert named == {
        ("secrets", defaults.local_ca_secret),
        ("configmaps", defaults.revocation_configmap),
    }


def test_bindings_grant_the_roles_to_the_operator_service_account() -> None:
    docs = _deploy_docs()
    account = _one(docs, "ServiceAccount", "wio")
    namespace = account["metadata"]["namespace"]
    assert _one(docs, "Deployment", "wio")["metadata"]["namespace"] == namespace
    assert _one(docs, "Role", "wio")["metadata"]["namespace"] == namespace
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = _one(docs, kind, "wio")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": "wio",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "wio", "namespace": namespace}
        ]


@pytest.mark.parametrize("kind", _RBAC_KINDS)
def test_chart_grants_exactly_the_rules_of_deploy_rbac(kind: str) -> None:
    deploy_rules = _one(_documents(DEPLOY / "rbac.yaml"), kind, "wio")["rules"]
    chart_rules = _one(_render(CHART / "templates" / "rbac.yaml"), kind, "wio")["rules"]
    assert chart_rules == deploy_rules


def test_chart_bindings_name_the_release_namespace() -> None:
    docs = _render(CHART / "templates" / "rbac.yaml")
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        assert _one(docs, kind, "wio")["subjects"] == [
            {"kind": "ServiceAccount", "name": "wio", "namespace": RELEASE_NAMESPACE}
        ]


def test_chart_ships_the_workload_binding_policy_of_deploy() -> None:
    """The chart's ValidatingAdmissionPolicy is the one deploy/ ships (labels apart)."""
    chart = _render(CHART / "templates" / "workload-binding.yaml")
    plain = _documents(DEPLOY / "workload-binding.yaml")
    assert [(d["kind"], d["spec"]) for d in chart] == [(d["kind"], d["spec"]) for d in plain]
