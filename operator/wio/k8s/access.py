# SPDX-License-Identifier: Apache-2.0
"""Where the Kubernetes API is and how to authenticate to it.

One place reads a kubeconfig or the in-cluster service-account files, so Kopf's watches and
wio's own writes use exactly the same endpoint and credentials.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wio.errors import ConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class ClusterAccess:
    """An API endpoint and credentials. ``repr`` never shows key material or tokens."""

    server: str
    ca_data: bytes | None = field(default=None, repr=False)
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    # In-cluster tokens are rotated by the kubelet: read the file on every (re)connect.
    token_file: Path | None = None
    namespace: str | None = None
    #: Sent with every request, so the API server's audit log tells replicas apart.
    user_agent: str = "wio"

    def bearer_token(self) -> str | None:
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        return self.token

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.ca_data:
            ctx.load_verify_locations(cadata=self.ca_data.decode())
        if self.cert_data and self.key_data:
            # ssl can only load client certificates from files: write them privately, then unlink.
            with tempfile.TemporaryDirectory(prefix="wio-tls-") as tmp:
                cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
                cert.write_bytes(self.cert_data)
                key.touch(mode=0o600)
                key.write_bytes(self.key_data)
                ctx.load_cert_chain(cert, key)
        return ctx


def _data(entry: dict[str, Any], name: str, base: Path) -> bytes | None:
    if entry.get(f"{name}-data"):
        return base64.b64decode(entry[f"{name}-data"])
    if entry.get(name):
        path = Path(entry[name])
        return (path if path.is_absolute() else base / path).read_bytes()
    return None


def from_kubeconfig(path: Path, context: str | None = None) -> ClusterAccess:
    """Read a kubeconfig file (certificate, token or token-file users; no exec plugins)."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError("kubeconfig", f"cannot read {path}: {err.__class__.__name__}") from err
    name = context or config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts", [])}
    if name not in contexts:
        raise ConfigError("kubeconfig", f"context {name!r} not found in {path}")
    ctx = contexts[name]
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters", [])}
    users = {u["name"]: u.get("user", {}) for u in config.get("users", [])}
    cluster = clusters.get(ctx.get("cluster"))
    if cluster is None:
        raise ConfigError("kubeconfig", f"cluster of context {name!r} not found in {path}")
    user = users.get(ctx.get("user"), {})
    if "exec" in user or "auth-provider" in user:
        raise ConfigError("kubeconfig", "exec and auth-provider users are not supported")
    base = path.parent
    token_file = Path(user["tokenFile"]) if user.get("tokenFile") else None
    return ClusterAccess(
        server=cluster["server"].rstrip("/"),
        ca_data=_data(cluster, "certificate-authority", base),
        cert_data=_data(user, "client-certificate", base),
        key_data=_data(user, "client-key", base),
        token=user.get("token"),
        token_file=token_file,
        namespace=ctx.get("namespace"),
    )


def in_cluster() -> ClusterAccess:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError("kubeconfig", "no kubeconfig given and not running in a cluster")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    return ClusterAccess(
        server=f"https://{host}:{port}",
        ca_data=(SERVICE_ACCOUNT_DIR / "ca.crt").read_bytes(),
        token_file=SERVICE_ACCOUNT_DIR / "token",
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
    )


def discover(kubeconfig: str | None = None, context: str | None = None) -> ClusterAccess:
    """An explicit kubeconfig, else $KUBECONFIG, else in-cluster, else ~/.kube/config."""
    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    if explicit:
        return from_kubeconfig(Path(explicit.split(os.pathsep)[0]), context)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster()
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return from_kubeconfig(default, context)
    raise ConfigError("kubeconfig", "no kubeconfig found and not running in a cluster")
