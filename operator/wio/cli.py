# SPDX-License-Identifier: Apache-2.0
"""The ``wio`` command: run the operator, or run it against a local control plane (``make run``).

``wio run`` is what the container runs: load and validate the admin configuration (a bad one
is a clear message and exit code 2), then run Kopf with wio's handlers and serve HTTP.
``wio dev`` starts a local control plane when no cluster is configured, installs the CRDs,
runs the operator in-process, applies a sample WorkloadIdentity and shows what was minted.
``wio status``, ``inspect``, ``renew``, ``revoke`` and ``verify`` are for SREs, with their own
kubeconfig (``wio.sre``); installed as ``kubectl-wio`` they are also a kubectl plugin.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from wio import __version__, handlers
from wio.clock import Clock, SystemClock, rfc3339
from wio.composition.public_listener import PublicListener
from wio.composition.replica import Flag, replica_identity, run_replica
from wio.composition.runtime import KubeFactory, Runtime
from wio.composition.standby import Standby
from wio.config import AdminConfig, load_config
from wio.errors import ConfigError, WioError
from wio.issuing.ca import LocalCA
from wio.k8s.access import ClusterAccess, discover
from wio.k8s.client import KubeClient, secret_path
from wio.k8s.leader_lease import LeaderLease
from wio.metrics import Metrics
from wio.models.audit import verify_chain
from wio.names import (
    API_VERSION,
    DISTRUST_CA_ANNOTATION,
    DISTRUST_JWT_ANNOTATION,
    LEADER_LEASE,
    ROLLOVER_CA_ANNOTATION,
    ROLLOVER_JWT_ANNOTATION,
)
from wio.policy.leadership import LeaseTimings
from wio.service.audit import AuditTrail
from wio.service.leadership import LeaderElector
from wio.sre import commands as sre
from wio.sre.objects import KINDS
from wio.sre.render import FORMATS
from wio.sre.requests import Request, revocation_request, rotation_request
from wio.sre.status import SORT_KEYS
from wio.web import Serving, build_ops_app, build_public_app, serve

log = logging.getLogger("wio")
REPO = Path(__file__).resolve().parents[2]


def configure_logging(level: str) -> None:
    """People's log lines to standard error; the audit stream, bare JSON lines, to standard
    output, so a log shipper can route the two apart (see README, Audit stream)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    audit = logging.getLogger("wio.audit")
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(logging.Formatter("%(message)s"))
    audit.handlers[:] = [stream]
    audit.setLevel(logging.INFO)  # the audit stream is whole whatever the log level
    audit.propagate = False
    # Kopf and aiohttp are chatty at INFO about every watch; their warnings still show.
    for noisy in ("kopf", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))


M_ARENA_MAX = -8  # glibc mallopt parameter


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Keep glibc to a couple of heap arenas (as ``MALLOC_ARENA_MAX=2`` would).

    The event loop allocates nearly everything on one thread; the few helper threads (DNS,
    hvac) would otherwise each get an arena of their own that fragments and is rarely
    returned. Must run before those threads start. Elsewhere than glibc this does nothing.
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        return


async def _return_freed_memory(interval: float = 30.0) -> None:
    """Hand memory freed after a burst (issuance storms parse many large bodies) back to the OS.

    glibc keeps freed heap pages for reuse; ``malloc_trim`` releases them, so RSS reflects what
    the operator holds, not its highest peak. Elsewhere than glibc this does nothing.
    """
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    while True:
        await asyncio.sleep(interval)
        trim(0)


async def run_operator(
    config: AdminConfig,
    access: ClusterAccess,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    clock: Clock | None = None,
    metrics: Metrics | None = None,
    serve_http: bool = True,
    runtime_out: dict[str, Runtime] | None = None,
    kube_factory: KubeFactory = KubeClient,
    identity: str | None = None,
    stop_signals: tuple[signal.Signals, ...] = (),
) -> None:
    """Run one operator replica until ``stop_flag`` is set (or forever).

    With leader election (the default) the replica serves HTTP from a read-only standby
    view until it holds the Lease, then runs the controllers until stopped, and hands the
    Lease back on the way out. ``ready_flag`` is set once it leads and its controllers run.
    A replica that could not renew the Lease stops its controllers at once and stands by
    again. ``stop_signals`` (in the main thread) stop it like
    ``stop_flag`` does.
    """
    metrics = metrics or Metrics()
    clock = clock or SystemClock()
    identity = identity or replica_identity()
    # Every request names the replica: the audit log then says which one wrote what.
    access = dataclasses.replace(access, user_agent=f"wio/{__version__} ({identity})")
    holder = runtime_out if runtime_out is not None else {}
    standby: dict[str, Standby] = {}
    audit = AuditTrail(identity, clock)

    async def start_runtime() -> Runtime:
        runtime = await Runtime.start(
            config, access, clock, metrics=metrics, kube_factory=kube_factory, audit=audit
        )
        holder["runtime"] = runtime
        return runtime

    def serving() -> Serving | None:
        return holder.get("runtime") or standby.get("view")

    def local_ca() -> LocalCA | None:
        current = serving()
        return current.local_ca if current is not None else None

    public = PublicListener(
        config, build_public_app(serving, issuer=config.jwt_issuer), local_ca, clock
    )
    ops = None
    if serve_http:
        ops_app = build_ops_app(metrics, serving, lambda: public.up)
        ops = await serve(ops_app, config.http_host, config.metrics_port)
        await public.start()
    trimmer = asyncio.create_task(_return_freed_memory(), name="wio-malloc-trim")

    async def run_controllers(stop: Flag | None, ready: Flag | None) -> None:
        await handlers.run(
            start_runtime,
            access,
            namespaces=config.watch_namespaces,
            stop_flag=stop,
            ready_flag=ready,
        )

    try:
        if not config.leader_election:
            await run_controllers(stop_flag, ready_flag)
            return
        # Its own client, one attempt per request: a renewal must not outlast the deadline
        # retrying, nor queue behind the controllers' writes.
        lease_kube = KubeClient(access, max_inflight=2, attempts=1)
        elector = LeaderElector(
            LeaderLease(lease_kube, namespace=config.operator_namespace, name=LEADER_LEASE),
            identity=identity,
            timings=LeaseTimings(
                config.lease_duration, config.lease_renew_deadline, config.lease_retry_period
            ),
            clock=clock,
            on_change=metrics.set_leading,
        )

        def new_standby() -> Standby:
            standby["view"] = Standby(config, access, clock, metrics, audit)
            return standby["view"]

        async def lost() -> None:
            # Kopf was cancelled, not stopped: stop what the runtime itself runs.
            runtime = holder.pop("runtime", None)
            if runtime is not None:
                await runtime.stop()

        try:
            await run_replica(
                elector,
                new_standby,
                run_controllers,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
                stop_signals=stop_signals,
                on_lost=lost,
            )
        finally:
            await lease_kube.close()
    finally:
        trimmer.cancel()
        await public.stop()
        if ops is not None:
            await ops.cleanup()


def _load_config(path: str | None, overrides: dict[str, str] | None = None) -> AdminConfig:
    try:
        return load_config(path, {**os.environ, **(overrides or {})})
    except ConfigError as err:
        print(f"wio: invalid configuration: {err}", file=sys.stderr)
        raise SystemExit(2) from err


def _cmd_run(args: argparse.Namespace) -> int:
    _limit_malloc_arenas()
    config = _load_config(args.config)
    configure_logging(config.log_level)
    try:
        access = discover(args.kubeconfig)
    except ConfigError as err:
        print(f"wio: {err}", file=sys.stderr)
        return 2
    # SIGTERM (the kubelet stopping the pod) stops the replica gracefully: a leader stops
    # writing, then hands the Lease over at once.
    asyncio.run(run_operator(config, access, stop_signals=(signal.SIGTERM, signal.SIGINT)))
    return 0


# -- wio dev ---------------------------------------------------------------------------------

SAMPLE = REPO / "deploy" / "samples" / "workloadidentity.yaml"


@contextlib.contextmanager
def _cluster(kubeconfig: str | None) -> Iterator[tuple[ClusterAccess, Path | None, Any]]:
    """The configured cluster, or a local control plane started (and stopped) here."""
    if kubeconfig or os.environ.get("KUBECONFIG"):
        yield discover(kubeconfig), None, None
        return
    from wio.devcluster import ControlPlane, find_binaries

    binaries = find_binaries()
    with ControlPlane(binaries) as cluster:
        print(
            f"Started a local control plane in {cluster.startup_seconds:.1f}s at {cluster.server}"
        )
        yield discover(str(cluster.kubeconfig)), cluster.kubeconfig, binaries.kubectl


async def _apply_all(access: ClusterAccess, documents: list[dict[str, Any]]) -> None:
    from wio.k8s.client import KubeClient

    kube = KubeClient(access)
    try:
        for doc in documents:
            await kube.apply(_path_of(doc), doc)
    finally:
        await kube.close()


def _path_of(doc: dict[str, Any]) -> str:
    kind, meta = doc["kind"], doc["metadata"]
    if kind == "CustomResourceDefinition":
        return f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{meta['name']}"
    if kind == "Namespace":
        return f"/api/v1/namespaces/{meta['name']}"
    if kind == "WorkloadIdentity":
        base = f"/apis/{API_VERSION}/namespaces/{meta['namespace']}"
        return f"{base}/workloadidentities/{meta['name']}"
    raise ValueError(f"wio dev does not know how to apply a {kind}")


def _show_identity(access: ClusterAccess, namespace: str, name: str, timeout: float) -> None:
    """Wait for the sample to be Ready, then print its status and certificate (never the key)."""
    import base64
    import time

    from cryptography import x509

    from wio.k8s.client import KubeClient

    async def fetch() -> tuple[dict[str, Any], dict[str, Any] | None]:
        kube = KubeClient(access)
        try:
            deadline = time.monotonic() + timeout
            while True:
                body = await kube.get(
                    _path_of(
                        {
                            "kind": "WorkloadIdentity",
                            "metadata": {"namespace": namespace, "name": name},
                        }
                    )
                )
                status = body.get("status") or {}
                ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
                if ready and ready[0].get("status") == "True" and status.get("secretName"):
                    secret = await kube.get(
                        f"/api/v1/namespaces/{namespace}/secrets/{status['secretName']}"
                    )
                    return body, secret
                if time.monotonic() > deadline:
                    return body, None
                await asyncio.sleep(0.2)
        finally:
            await kube.close()

    body, secret = asyncio.run(fetch())
    status = body.get("status") or {}
    print(f"\nWorkloadIdentity {namespace}/{name}:")
    for cond in status.get("conditions") or []:
        reason, message = cond.get("reason", ""), cond.get("message", "")
        print(f"  {cond['type']:<16} {cond['status']:<6} {reason}: {message}")
    if secret is None:
        print("  not Ready yet; see the operator log above")
        return
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    uris = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.UniformResourceIdentifier)
    keys = ", ".join(sorted(secret["data"]))
    print(f"\nSecret {namespace}/{status['secretName']} (type {secret['type']}), keys: {keys}")
    print("Certificate in tls.crt:")
    print(f"  subject:     {cert.subject.rfc4514_string() or '(empty)'}")
    print(f"  issuer:      {cert.issuer.rfc4514_string()}")
    print(f"  SPIFFE ID:   {', '.join(uris)}")
    print(f"  serial:      {status.get('serialNumber')}")
    print(f"  not before:  {cert.not_valid_before_utc.isoformat()}")
    print(f"  not after:   {cert.not_valid_after_utc.isoformat()}")
    print(f"  renews at:   {status.get('renewalTime')}")
    print(f"  key SHA-256: {status.get('keyFingerprint')} (the private key stays in the Secret)")


def _cmd_dev(args: argparse.Namespace) -> int:
    from wio.devcluster.processes import free_port

    port = args.http_port or free_port()
    overrides = {
        "WIO_TRUST_DOMAIN": os.environ.get("WIO_TRUST_DOMAIN", "dev.wio.local"),
        "WIO_JWT_ISSUER": os.environ.get("WIO_JWT_ISSUER", f"http://127.0.0.1:{port}"),
        "WIO_HTTP_PORT": str(port),
        "WIO_METRICS_PORT": str(free_port()),
    }
    # On this machine only: loopback, where the public port may speak plain HTTP.
    config = dataclasses.replace(_load_config(args.config, overrides), http_host="127.0.0.1")
    configure_logging(config.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    with _cluster(args.kubeconfig) as (access, kubeconfig, kubectl):
        crds = [
            d
            for f in sorted((REPO / "crds").glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text())
            if d
        ]
        asyncio.run(_apply_all(access, crds))
        _wait_crds(access, [d["metadata"]["name"] for d in crds])
        sample = [d for d in yaml.safe_load_all(SAMPLE.read_text()) if d]
        namespaces = {config.operator_namespace} | {
            d["metadata"]["namespace"] for d in sample if "namespace" in d["metadata"]
        }
        asyncio.run(
            _apply_all(
                access,
                [
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                    for n in sorted(namespaces)
                ],
            )
        )
        ready = threading.Event()
        thread = threading.Thread(
            target=lambda: asyncio.run(
                run_operator(config, access, stop_flag=stop, ready_flag=ready)
            ),
            name="wio-operator",
            daemon=True,
        )
        thread.start()
        ready.wait(60)
        asyncio.run(_apply_all(access, sample))
        for doc in sample:
            if doc["kind"] == "WorkloadIdentity":
                _show_identity(access, doc["metadata"]["namespace"], doc["metadata"]["name"], 60)
        base, ops = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{config.metrics_port}"
        print(f"\nOperator HTTP: {base}/jwks.json, {ops}/metrics, {ops}/readyz")
        if kubeconfig is not None:
            print(f"\nIn another shell:\n  export KUBECONFIG={kubeconfig}")
            print(f"  {kubectl} get workloadidentities -A")
        print("\nwio is running; press Ctrl-C to stop everything it started.", flush=True)
        stop.wait()
        thread.join(30)
    return 0


def _wait_crds(access: ClusterAccess, names: list[str], timeout: float = 30.0) -> None:
    import time

    from wio.k8s.client import KubeClient

    async def wait() -> None:
        kube = KubeClient(access)
        try:
            deadline = time.monotonic() + timeout
            for name in names:
                while True:
                    crd = await kube.get(
                        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
                    )
                    conditions = (crd.get("status") or {}).get("conditions") or []
                    if any(
                        c.get("type") == "Established" and c.get("status") == "True"
                        for c in conditions
                    ):
                        break
                    if time.monotonic() > deadline:
                        raise WioError(f"CRD {name} not Established after {timeout:.0f}s")
                    await asyncio.sleep(0.1)
        finally:
            await kube.close()

    asyncio.run(wait())


def _cmd_rollover(args: argparse.Namespace) -> int:
    """Ask the running operator for a key rollover by annotating its signer Secret."""
    try:
        access = discover(args.kubeconfig)
    except ConfigError as err:
        print(f"wio: {err}", file=sys.stderr)
        return 2
    annotation = {
        ("ca", False): ROLLOVER_CA_ANNOTATION,
        ("ca", True): DISTRUST_CA_ANNOTATION,
        ("jwt", False): ROLLOVER_JWT_ANNOTATION,
        ("jwt", True): DISTRUST_JWT_ANNOTATION,
    }[(args.key, args.distrust)]
    request = f"{rfc3339(SystemClock().now())}-{secrets.token_hex(3)}"

    async def annotate() -> None:
        kube = KubeClient(access)
        try:
            await kube.merge_patch(
                secret_path(args.namespace, args.secret),
                {"metadata": {"annotations": {annotation: request}}},
            )
        finally:
            await kube.close()

    try:
        asyncio.run(annotate())
    except WioError as err:
        print(f"wio: could not request the rollover: {err}", file=sys.stderr)
        return 1
    what = "distrust" if args.distrust else "rollover"
    print(f"requested {args.key} {what} {request} on Secret {args.namespace}/{args.secret}")
    print(
        f"follow it with: kubectl -n {args.namespace} get events "
        f"--field-selector involvedObject.name={args.secret}"
    )
    return 0


# -- the SRE commands (wio.sre) ---------------------------------------------------------------


def _cmd_status(args: argparse.Namespace) -> int:
    return sre.status(
        args.kubeconfig,
        namespace=args.namespace,
        all_namespaces=args.all_namespaces,
        sort=args.sort,
        output=args.output,
        console=sre.Console(),
    )


def _cmd_inspect(args: argparse.Namespace) -> int:
    return sre.inspect_command(
        args.kubeconfig, args.target, kind=args.kind, output=args.output, console=sre.Console()
    )


def _cmd_renew(args: argparse.Namespace) -> int:
    return _annotate(args, lambda clock: rotation_request(clock.now()))


def _cmd_revoke(args: argparse.Namespace) -> int:
    return _annotate(args, lambda clock: revocation_request(args.reason, clock.now()))


def _annotate(args: argparse.Namespace, make: Callable[[Clock], Request]) -> int:
    """``renew`` and ``revoke``: set the request annotation, wait for status to answer."""
    return sre.request(
        args.kubeconfig,
        args.target,
        make,
        kind=args.kind,
        wait=args.timeout if args.wait else None,
        output=args.output,
        console=sre.Console(),
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    return sre.verify_command(
        args.kubeconfig,
        args.file,
        bundle_from=args.bundle_from,
        configmap=args.bundle_configmap,
        audience=args.audience,
        trust_domain=args.trust_domain,
        issuer=args.issuer,
        output=args.output,
        console=sre.Console(),
    )


def _sre_parsers(sub: Any) -> None:
    """``status``, ``inspect``, ``renew``, ``revoke`` and ``verify`` (README "SRE command line")."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, ~/.kube/config")
    common.add_argument("-o", "--output", choices=FORMATS, default="table")
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("target", metavar="NAMESPACE/NAME")
    target.add_argument("--kind", choices=sorted(KINDS), help="when both kinds have the name")
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait until status acknowledges the request (default)",
    )
    waiting.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")

    status = sub.add_parser(
        "status", parents=[common], help="every credential wio manages, with its health"
    )
    scope = status.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true")
    scope.add_argument("-n", "--namespace", default=None, help="default: the context's")
    status.add_argument("--sort", choices=SORT_KEYS, default="expiry")
    sub.add_parser(
        "inspect",
        parents=[common, target],
        help="decoded metadata of a credential Secret (never the key or token)",
    )
    sub.add_parser(
        "renew", parents=[common, target, waiting], help="force a rotation and wait for it"
    )
    revoke = sub.add_parser(
        "revoke",
        parents=[common, target, waiting],
        help="revoke everything issued so far, without deleting, and issue afresh",
    )
    revoke.add_argument("--reason", required=True, help="recorded in the list, Events, status")
    verify = sub.add_parser(
        "verify",
        parents=[common],
        help="check an SVID (PEM chain) or JWT against the published bundle and revocations",
    )
    verify.add_argument(
        "file", metavar="FILE", help="a PEM certificate chain or a JWT; - for stdin"
    )
    verify.add_argument(
        "--bundle-from", metavar="NAMESPACE", help="default: the namespace of its SPIFFE ID"
    )
    verify.add_argument("--bundle-configmap", default=AdminConfig.trust_configmap)
    verify.add_argument("--audience", help="a JWT's expected audience (not checked without)")
    verify.add_argument("--trust-domain", help="default: the credential's own")
    verify.add_argument("--issuer", help="an access token's expected iss (default: its own)")


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    try:
        if args.file == "-":
            report = verify_chain(sys.stdin, partial=args.partial)
        else:
            with open(args.file, encoding="utf-8", errors="replace") as handle:
                report = verify_chain(handle, partial=args.partial)
    except OSError as err:
        print(f"wio audit verify: cannot read {args.file}: {err.strerror}", file=sys.stderr)
        return 2
    if not report.intact:
        where = f" at line {report.line}" if report.line else ""
        print(f"broken{where}: {report.problem}")
        return 1
    print(
        f"intact: {report.records} records from {len(report.replicas)} replica(s), "
        f"{report.segments} process start(s)"
    )
    return 0


def main(argv: list[str] | None = None, prog: str = "wio") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator (in a cluster, or against a kubeconfig)")
    run.add_argument("--config", default=os.environ.get("WIO_CONFIG"), help="admin config YAML")
    run.add_argument("--kubeconfig", default=None)
    dev = sub.add_parser("dev", help="local control plane + operator + a sample identity")
    dev.add_argument("--config", default=os.environ.get("WIO_CONFIG"))
    dev.add_argument("--kubeconfig", default=None, help="use this cluster instead of a local one")
    dev.add_argument("--http-port", type=int, default=0)
    rollover = sub.add_parser(
        "rollover",
        help="ask the operator to roll its local CA or JWT key over (publish, then sign)",
    )
    rollover.add_argument("key", choices=("ca", "jwt"))
    rollover.add_argument(
        "--distrust",
        action="store_true",
        help="emergency: stop trusting the current key now and re-issue all it signed",
    )
    rollover.add_argument("--kubeconfig", default=None)
    rollover.add_argument("--namespace", default=AdminConfig.operator_namespace)
    rollover.add_argument("--secret", default=AdminConfig.local_ca_secret)
    _sre_parsers(sub)
    audit = sub.add_parser("audit", help="the audit stream").add_subparsers(
        dest="audit_command", required=True
    )
    verify_audit = audit.add_parser(
        "verify", help="check an audit log's hash chains (exit 0 intact, 1 broken)"
    )
    verify_audit.add_argument("file", help="a log file (other lines are skipped), or - for stdin")
    verify_audit.add_argument(
        "--partial",
        action="store_true",
        help="the file is a slice of a longer stream (each replica's first record is trusted)",
    )
    args = parser.parse_args(argv)
    commands = {
        "run": _cmd_run,
        "dev": _cmd_dev,
        "rollover": _cmd_rollover,
        "status": _cmd_status,
        "inspect": _cmd_inspect,
        "renew": _cmd_renew,
        "revoke": _cmd_revoke,
        "verify": _cmd_verify,
        "audit": _cmd_audit_verify,
    }
    return int(commands[args.command](args))


def kubectl_main() -> int:
    """``kubectl-wio``: the same commands as a kubectl plugin (``kubectl wio status``)."""
    return main(prog="kubectl wio")


if __name__ == "__main__":
    sys.exit(main())
