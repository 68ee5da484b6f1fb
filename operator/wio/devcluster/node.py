# SPDX-License-Identifier: Apache-2.0
"""A real node for the local control plane: containerd, a bridge pod network and a kubelet.

The e2e tier installs the operator's image with Helm and runs it as pods; that needs a node.
``Node`` joins one to a ``ControlPlane`` started with the node binaries, on this machine, as
root:

- containerd on its own socket, root and state directories (never another containerd's), with
  the bridge CNI network ``wio-node`` (bridge + host-local + portmap; containerd adds loopback)
  and a pause image built here (``wio.devcluster.pause``), since no registry is reachable;
- the node's address as a /32 on ``lo`` (the kernel may have no dummy device), where the
  kubelet serves and the API server reaches it;
- pods reach the API server at the ``kubernetes`` Service IP without kube-proxy: a DNAT from
  that address to the loopback API port, with ``route_localnet`` on the bridge;
- the kubelet on a ``system:node:<name>`` client certificate (Node authorization applies to
  it) and a serving certificate from the cluster CA, configured for a cgroup v1 host.

Ports 10250/10248, the bridge, the pod subnet and the address are machine-wide, so a lock under
/run/lock keeps two runs apart. Teardown removes every trace: processes, containers, mounts,
the kubelet's and our iptables chains, the bridge, the address and the state directory. A run
that crashed leaves traces behind; the next one removes them before it starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import yaml

from wio.devcluster.binaries import NodeBinaries, Unavailable
from wio.devcluster.cluster import KUBERNETES_SERVICE_IP, ControlPlane
from wio.devcluster.packages import (
    NODE_PACKAGES,
    ensure_packages,
    missing_packages,
    why_not_installable,
)
from wio.devcluster.pause import PAUSE_IMAGE, pause_archive
from wio.devcluster.processes import ManagedProcess, ProcessFailed

NODE_NAME = "wio-node"
#: The node's InternalIP: a /32 on `lo`, outside any network this kind of machine routes.
NODE_ADDRESS = ipaddress.IPv4Address("10.245.0.1")
POD_SUBNET = ipaddress.IPv4Network("10.244.0.0/24")
BRIDGE = "wio-cni0"
NETWORK_NAME = "wio-node"
#: Everything the node writes lives here, so a crashed run's traces are easy to find.
STATE_DIR = Path("/var/lib/wio-node")
LOCK_FILE = Path("/run/lock/wio-node.lock")
#: The kubelet's cgroup root: pods' cgroups live below it and nowhere else.
CGROUP_ROOT = "wio-node"
#: Our nat chain (the Service-IP DNAT).
NAT_CHAIN = "WIO-NODE"
#: Chains the kubelet creates (kubelet_network_linux.go), in every table and IP family.
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")
CNI_BIN_DIR = Path("/usr/lib/cni")
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
# The CNI library caches results here whatever containerd's directories are.
_CNI_CACHE = Path("/var/lib/cni/results")
# containerd 1.6 puts its shims' sockets here whatever its state directory is.
_SHIM_SOCKETS = Path("/run/containerd/s")
# The kubelet links container logs here whatever its root directory is.
_CONTAINER_LOG_LINKS = Path("/var/log/containers")


def why_node_unavailable() -> str | None:
    """Why a node cannot run on this machine, or None when it can."""
    if sys.platform != "linux":
        return f"a node needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "a node needs root (containerd, the kubelet, iptables and mounts)"
    missing = missing_packages(NODE_PACKAGES)
    if missing:
        reason = why_not_installable()
        if reason is not None:
            return f"Debian packages {', '.join(missing)} are missing and {reason}"
    for tool in ("ip", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH"
    if not _cgroup_hierarchies():
        return "no cgroup filesystem is mounted"
    return None


class Node:
    """One kubelet node joined to ``cluster``; a context manager, or ``start()``/``stop()``.

    ``cluster`` must have been started with the node binaries (``ControlPlane(..., node=...)``).
    """

    def __init__(
        self,
        cluster: ControlPlane,
        binaries: NodeBinaries,
        *,
        name: str = NODE_NAME,
        lock_timeout: float = 600.0,
    ) -> None:
        if cluster.node_binaries is None:
            raise ValueError("the control plane was started without node support (node=...)")
        self.cluster = cluster
        self.binaries = binaries
        self.name = name
        self.lock_timeout = lock_timeout
        self.state_dir = STATE_DIR
        self.containerd_socket = self.state_dir / "containerd.sock"
        #: The kubelet's own credentials (system:node:<name>, group system:nodes).
        self.kubeconfig = self.state_dir / "kubelet.kubeconfig"
        self._lock: IO[str] | None = None
        self._containerd: ManagedProcess | None = None
        self._kubelet: ManagedProcess | None = None
        self.startup_seconds: float | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._kubelet is not None

    def start(self, timeout: float = 60.0) -> None:
        """Clean up after any crashed run, then start containerd and the kubelet.

        Returns once the kubelet answers its health check; ``wait_ready`` waits for the Node.
        """
        if self.running:
            return
        began = time.monotonic()
        ensure_packages(NODE_PACKAGES)
        self._acquire_lock()
        try:
            _cleanup(self.state_dir)
            self._prepare_host()
            self._start_containerd(timeout)
            self.import_image(pause_archive())
            self._start_kubelet(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop everything and remove every trace of the node from the machine."""
        if self._lock is None:
            return
        try:
            # The kubelet first, so it does not restart the containers we are about to kill.
            for proc in (self._kubelet, self._containerd):
                if proc is not None:
                    proc.stop()
            self._kubelet = self._containerd = None
            # The logs outlive the state directory in the control plane's work dir (kept
            # with WIO_KEEP_DEVCLUSTER), for whoever debugs a failed run.
            logs = self.cluster.workdir / f"node-{self.name}"
            logs.mkdir(exist_ok=True)
            for log in self.state_dir.glob("*.log"):
                shutil.copy(log, logs / log.name)
            _cleanup(self.state_dir)
        finally:
            self._lock.close()
            self._lock = None

    def pids(self) -> list[int]:
        return [p.pid for p in (self._containerd, self._kubelet) if p is not None]

    # -- what callers use ------------------------------------------------------------------

    def import_image(self, archive: Path) -> None:
        """Import a docker-archive (``docker save``) tar into the node's image store; pods then
        use it with ``imagePullPolicy: Never``."""
        _run(self._ctr("images", "import", str(archive)), what=f"importing {archive.name}")

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until the Node is Ready and schedulable; return the seconds it took."""
        assert self._kubelet is not None, "the node has not been started"
        began = time.monotonic()
        self._kubelet.wait_ready(self._ready, timeout)
        return time.monotonic() - began

    def _ready(self) -> bool:
        node: Any = self.cluster.api_get(f"/api/v1/nodes/{self.name}")
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node.get("status", {}).get("conditions", [])
        )
        # The not-ready taint outlives the condition until node-lifecycle lifts it; pods
        # cannot be scheduled before.
        tainted = any(
            t["key"] == "node.kubernetes.io/not-ready" for t in node["spec"].get("taints", [])
        )
        return ready and not tainted

    # -- pieces ----------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        """Take the machine-wide node lock, waiting up to ``lock_timeout`` for another run."""
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        lock = open(LOCK_FILE, "a+")  # noqa: SIM115 - held until stop()
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    lock.seek(0)
                    holder = lock.read().strip() or "unknown"
                    lock.close()
                    raise Unavailable(
                        f"another wio node (pid {holder}) has held {LOCK_FILE} for "
                        f"{self.lock_timeout:.0f}s; only one node can run on a machine"
                    ) from None
                time.sleep(0.5)
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _prepare_host(self) -> None:
        d = self.state_dir
        for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "pki"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        # The bridge plugin turns forwarding on; remember what it was so teardown restores it.
        (d / "ip_forward").write_text(_IP_FORWARD.read_text())
        _run(["ip", "addr", "add", f"{NODE_ADDRESS}/32", "dev", "lo"], what="adding node address")
        # The bridge exists before the first pod so route_localnet can be set on it: replies
        # from the loopback API server to pods must be routable out of it.
        gateway = f"{POD_SUBNET[1]}/{POD_SUBNET.prefixlen}"
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"], what="creating the bridge")
        _run(["ip", "addr", "add", gateway, "dev", BRIDGE], what="addressing the bridge")
        _run(["ip", "link", "set", BRIDGE, "up"], what="bringing the bridge up")
        Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet").write_text("1\n")
        service = f"{KUBERNETES_SERVICE_IP}/32"
        dnat = ["-j", "DNAT", "--to-destination", f"127.0.0.1:{self.cluster.port}"]
        for rule in (
            ["-N", NAT_CHAIN],
            ["-A", NAT_CHAIN, "-d", service, "-p", "tcp", "--dport", "443", *dnat],
            ["-I", "PREROUTING", "-j", NAT_CHAIN],
        ):
            _run(["iptables", "-w", "-t", "nat", *rule], what="adding the Service-IP DNAT")
        self._write_cni_config()
        for hierarchy in _cgroup_hierarchies():
            (hierarchy / CGROUP_ROOT).mkdir(exist_ok=True)

    def _write_cni_config(self) -> None:
        d = self.state_dir / "cni"
        network = {
            "cniVersion": "1.0.0",
            "name": NETWORK_NAME,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # Pods talk to the node and to each other; nothing outside is reachable
                    # anyway (no registry), and no masquerade means no CNI chains to clean up.
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(d / "ipam"),
                        "ranges": [[{"subnet": str(POD_SUBNET)}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (d / "net.d" / f"10-{NETWORK_NAME}.conflist").write_text(json.dumps(network, indent=2))

    def _containerd_config(self) -> str:
        d = self.state_dir / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{self.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # This VM gives root no CAP_SYS_RESOURCE: runc cannot lower a sandbox's oom_score_adj.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state directory, not the machine-wide /run/netns.
  netns_mounts_under_state_dir = true

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{self.state_dir / "cni" / "net.d"}"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{d / "runc"}"
"""

    def _start_containerd(self, timeout: float) -> None:
        config = self.state_dir / "containerd" / "config.toml"
        config.write_text(self._containerd_config())
        self._containerd = ManagedProcess(
            "containerd",
            ["containerd", f"--config={config}"],
            self.state_dir / "containerd.log",
            _env(),
        )
        self._containerd.wait_ready(
            lambda: subprocess.run(self._ctr("version"), capture_output=True).returncode == 0,
            timeout,
        )

    def _ctr(self, *args: str) -> list[str]:
        return ["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io", *args]

    def _kubelet_config(self, cert: Path, key: Path) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": str(NODE_ADDRESS),
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": KUBELET_HEALTHZ_PORT,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "tlsCertFile": str(cert),
            "tlsPrivateKeyFile": str(key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.cluster.ca_file)},
            },
            "authorization": {"mode": "Webhook"},
            # A cgroup v1 host: 1.37 refuses it unless told; cgroupfs, as containerd uses.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "failSwapOn": False,
            "podLogsDir": str(self.state_dir / "pod-logs"),
            # A development machine's disk is often fuller than a node's: never evict test
            # pods or collect the images imported for them.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            # Mounted Secrets are refreshed on each pod sync (default every minute): sooner
            # here, so the e2e tier sees a rotation reach a pod in seconds, not a minute.
            "syncFrequency": "10s",
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
        }

    def _start_kubelet(self, timeout: float) -> None:
        d = self.state_dir
        # The kubelet's identity and its serving certificate come from the cluster CA, so
        # Node authorization applies to it and the API server can verify it (logs, exec).
        shutil.copy(
            self.cluster.kubeconfig_for(f"system:node:{self.name}", ("system:nodes",)),
            self.kubeconfig,
        )
        cert, key = self.cluster.serving_certificate(self.name, (str(NODE_ADDRESS),), d / "pki")
        config = d / "kubelet-config.yaml"
        config.write_text(yaml.safe_dump(self._kubelet_config(cert, key)))
        argv = [
            str(self.binaries.kubelet),
            f"--config={config}",
            f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={d / 'kubelet'}",
            f"--hostname-override={self.name}",
            f"--node-ip={NODE_ADDRESS}",
        ]
        self._kubelet = ManagedProcess("kubelet", argv, d / "kubelet.log", _env())
        healthz = f"http://127.0.0.1:{KUBELET_HEALTHZ_PORT}/healthz"
        self._kubelet.wait_ready(lambda: _http_ok(healthz), timeout)


# -- teardown: shared by stop() and the clean-up before a start -----------------------------

_IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def _cleanup(state_dir: Path) -> None:
    """Remove every trace a node run (finished or crashed) left on the machine.

    Runs under the machine lock, so whatever it finds belongs to a run of ours that is over.
    """
    _kill_cgroup_tree()
    # Left over after a crash: the kubelet and containerd die with their parent, but
    # containerd's shims are daemons. The first two name their config, the shims our socket.
    _kill_matching((f"--config={state_dir}/", f"-address {state_dir}/"))
    _remove_cgroup_tree()
    _remove_outside_files(state_dir)
    _unmount_below(state_dir)
    saved = state_dir / "ip_forward"
    if saved.is_file():
        _IP_FORWARD.write_text(saved.read_text())
    shutil.rmtree(state_dir, ignore_errors=True)
    _remove_iptables()
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        _run(["ip", "link", "del", BRIDGE], what="deleting the bridge")
    addresses = _run(["ip", "-4", "-o", "addr", "show", "dev", "lo"], what="listing lo")
    if f" {NODE_ADDRESS}/32 " in addresses:
        _run(["ip", "addr", "del", f"{NODE_ADDRESS}/32", "dev", "lo"], what="removing address")


def _remove_outside_files(state_dir: Path) -> None:
    """Files containerd, the CNI library and the kubelet keep outside our state directory,
    found from the container IDs in it: shims' sockets (their name is a digest of our socket,
    namespace and ID), cached CNI results, container log links."""
    tasks = state_dir / "containerd" / "state" / "io.containerd.runtime.v2.task" / "k8s.io"
    ids = [p.name for p in tasks.iterdir()] if tasks.is_dir() else []
    socket = state_dir / "containerd.sock"
    for container in ids:
        digest = hashlib.sha256(f"{socket}/k8s.io/{container}".encode()).hexdigest()
        (_SHIM_SOCKETS / digest).unlink(missing_ok=True)
        for cached in (f"{NETWORK_NAME}-{container}-eth0", f"cni-loopback-{container}-lo"):
            (_CNI_CACHE / cached).unlink(missing_ok=True)
    # Ours if nothing else is in them (another containerd's shims would be).
    for directory in (_SHIM_SOCKETS, _SHIM_SOCKETS.parent):
        with contextlib.suppress(OSError):
            directory.rmdir()
    if _CONTAINER_LOG_LINKS.is_dir():
        for link in _CONTAINER_LOG_LINKS.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(f"{state_dir}/"):
                link.unlink()


def _cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy: the v1 ones and, on a hybrid host, the unified one
    (the kubelet's cgroup library creates the pods' cgroups there too)."""
    return [Path(m[1]) for m in _mounts() if m[2] in ("cgroup", "cgroup2")]


def _kill_cgroup_tree() -> None:
    """SIGKILL every process in the pods' cgroups (the containers) until none is left."""
    deadline = time.monotonic() + 30
    while True:
        pids = {
            int(pid)
            for hierarchy in _cgroup_hierarchies()
            for procs in (hierarchy / CGROUP_ROOT).rglob("cgroup.procs")
            for pid in _read(procs).split()
        }
        if not pids:
            return
        if time.monotonic() > deadline:
            raise ProcessFailed(f"container processes {sorted(pids)} survived SIGKILL for 30s")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _remove_cgroup_tree() -> None:
    for hierarchy in _cgroup_hierarchies():
        root = hierarchy / CGROUP_ROOT
        if not root.is_dir():
            continue
        # Children before parents; cgroup directories are removed with rmdir, never unlink.
        for directory in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(FileNotFoundError):
                directory.rmdir()
        with contextlib.suppress(FileNotFoundError):
            root.rmdir()


def _kill_matching(needles: tuple[str, ...]) -> None:
    """SIGKILL every process (not us) whose command line has one of ``needles``; wait."""
    victims = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        pid = int(cmdline.parent.name)
        if pid == os.getpid():
            continue
        command = _read(cmdline).replace("\0", " ")
        if any(needle in command for needle in needles):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                victims.append(pid)
    deadline = time.monotonic() + 10
    while victims and time.monotonic() < deadline:
        victims = [p for p in victims if _alive(p)]
        time.sleep(0.05)


def _unmount_below(directory: Path) -> None:
    """Unmount everything mounted at or below ``directory``, deepest first."""
    prefix = f"{directory}/"
    for _ in range(5):  # a mount can hide another at the same point; a few passes uncover all
        points = sorted({m[1] for m in _mounts() if m[1].startswith(prefix)}, key=len, reverse=True)
        if not points:
            return
        for point in points:
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                # Busy (a process we could not see holds it): detach it now, freed later.
                subprocess.run(["umount", "--lazy", point], capture_output=True)
    left = [m[1] for m in _mounts() if m[1].startswith(prefix)]
    if left:
        raise ProcessFailed(f"could not unmount {left}")


def _remove_iptables() -> None:
    """Delete our chain and the kubelet's, with every rule jumping to them, in both families."""
    chains = (NAT_CHAIN, *KUBELET_CHAINS)
    for binary in ("iptables", "ip6tables"):
        if shutil.which(binary) is None:
            continue
        for table in ("filter", "nat", "mangle"):
            listing = subprocess.run(
                [binary, "-w", "-t", table, "-S"], capture_output=True, text=True
            ).stdout.splitlines()
            present = {r.split()[1] for r in listing if r.startswith("-N ")} & set(chains)
            if not present:
                continue
            for rule in listing:
                words = rule.split()
                # A rule jumping to one of the chains, in a chain that is not itself going away.
                if words[0] == "-A" and words[1] not in present and _jumps_to(words, present):
                    _run([binary, "-w", "-t", table, "-D", *words[1:]], what="removing a rule")
            for chain in present:
                _run([binary, "-w", "-t", table, "-F", chain], what=f"flushing {chain}")
            for chain in present:
                _run([binary, "-w", "-t", table, "-X", chain], what=f"deleting {chain}")


def _jumps_to(words: list[str], chains: set[str]) -> bool:
    return any(
        flag in ("-j", "-g") and target in chains for flag, target in itertools.pairwise(words)
    )


# -- small helpers --------------------------------------------------------------------------


def _mounts() -> list[list[str]]:
    """(device, mount point, type, ...) of every mount, octal escapes in paths decoded."""
    rows = []
    for line in _read(Path("/proc/self/mounts")).splitlines():
        fields = line.split()
        fields[1] = fields[1].encode().decode("unicode_escape")
        rows.append(fields)
    return rows


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:  # gone (a process exited, a cgroup was removed) between listing and read
        return ""


def _alive(pid: int) -> bool:
    stat = _read(Path(f"/proc/{pid}/stat"))
    return bool(stat) and stat.split(")", 1)[1].split()[0] != "Z"


def _env() -> dict[str, str]:
    # The kubelet and containerd run iptables, mount and the CNI plugins: sbin must be on PATH.
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return {"PATH": f"{path}:/usr/sbin:/sbin", "HOME": os.environ.get("HOME", "/")}


def _run(argv: list[str], *, what: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=_env())
    if result.returncode != 0:
        raise ProcessFailed(
            f"{what}: `{' '.join(argv)}` failed (exit {result.returncode}):\n"
            + (result.stderr or result.stdout)[-3000:]
        )
    return result.stdout


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback http
        return bool(response.status == 200)
