"""Run containerd (with its CRI plugin) and dockerd against pyoci (or runc) in
throw-away, isolated directories, with images built from a busybox rootfs.

Everything an engine keeps (configuration, content store, snapshots, state,
sockets, logs, the runtimes' ``--root``) lives under one base directory;
nothing touches /etc/containerd, /var/lib/containerd, /var/lib/docker or the
machine's own daemons.  Used by tests/e2e (test_containerd, test_cri,
test_docker); also handy to reproduce a failure by hand::

    python -m tools.engines start /tmp/eng     # containerd + dockerd, images imported
    python -m tools.engines env /tmp/eng       # the ctr / docker command prefixes
    python -m tools.engines stop /tmp/eng

Isolation choices (what the tests rely on):

* containerd: its own ``root``, ``state``, gRPC/ttrpc sockets and ``opt``
  directory; the ``native`` snapshotter (no overlay mounts); the CRI plugin
  with one runtime handler per runtime (``io.containerd.runc.v2`` with
  ``BinaryName`` and ``Root`` under the base directory), the pause image built
  here as ``sandbox_image``, no CNI configuration (pods use the host
  network), ``restrict_oom_score_adj = true`` (this machine lacks
  CAP_SYS_RESOURCE, so the sandbox's negative ``oomScoreAdj`` would fail for
  every runtime).  containerd 1.6's shims make /run/containerd/s (their
  sockets, removed as they exit) and /run/containerd/runc/<namespace>
  whatever the config says; stop() removes those directories when it made
  them and they are empty.
* dockerd: a ``daemon.json`` (``--config-file``) with ``data-root``,
  ``exec-root``, ``pidfile``, ``hosts``, vfs storage, no bridge, no iptables,
  its own ``cgroup-parent``, the ``runtimes`` to register and the containerd
  above (namespace ``moby``); the client runs with ``DOCKER_CONFIG`` under the
  base directory.
* Rootless Docker (RootlessDockerd): dockerd-rootless.sh run as an
  unprivileged user, RootlessKit with the host network; dockerd starts its
  own containerd inside RootlessKit's namespaces.
* images: one tarball holding both an OCI image layout (``index.json``,
  ``blobs/``) and Docker's ``manifest.json``, so ``ctr image import`` and
  ``docker load`` both take it; the layer is the busybox rootfs of
  tools.podman.busybox_tar.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tools.podman import BASE_PATH, busybox_tar, pyoci_launcher, runc_path

BUSYBOX_REF = "localhost/pyoci-busybox:latest"
PAUSE_REF = "localhost/pyoci-pause:latest"
CONTAINERD = shutil.which("containerd", path=BASE_PATH) or "/usr/bin/containerd"
CTR = shutil.which("ctr", path=BASE_PATH) or "/usr/bin/ctr"
DOCKERD = shutil.which("dockerd", path=BASE_PATH) or "/usr/sbin/dockerd"
# docker.io's client, not whatever `docker` comes first in PATH (a newer client
# may speak an API version dockerd 20.10 refuses).
DOCKER = "/usr/bin/docker"
ROOTLESSKIT = shutil.which("rootlesskit", path=BASE_PATH) or "/usr/bin/rootlesskit"
SHIM = shutil.which("containerd-shim-runc-v2", path=BASE_PATH) or "/usr/bin/containerd-shim-runc-v2"
DOCKERD_ROOTLESS = "/usr/share/docker.io/contrib/dockerd-rootless.sh"   # Debian's docker.io


# -- images -------------------------------------------------------------------------


# uname's machine -> the image platform's architecture (Go's GOARCH)
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
          "s390x": "s390x", "riscv64": "riscv64"}


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _blob(tar: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    """Add ``data`` as a blob of the image layout; returns (digest, size)."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _add(tar, _blob_path(digest), data)
    return digest, len(data)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    ti.mtime = int(time.time())
    tar.addfile(ti, io.BytesIO(data))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def image_tar(dest: str, ref: str, layer_tar: str, *, cmd: list[str] | None = None,
              entrypoint: list[str] | None = None) -> str:
    """Write at ``dest`` an image archive named ``ref`` (``name:tag``) with the
    one uncompressed layer ``layer_tar``: an OCI image layout plus Docker's
    ``manifest.json`` (what ``docker save`` writes since Docker 25), which
    ``ctr image import`` and ``docker load`` both read."""
    with open(layer_tar, "rb") as f:
        layer = f.read()
    img_config: dict[str, Any] = {"Env": [f"PATH={BASE_PATH}"], "WorkingDir": "/"}
    if cmd is not None:
        img_config["Cmd"] = cmd
    if entrypoint is not None:
        img_config["Entrypoint"] = entrypoint
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    platform = {"architecture": GOARCH.get(os.uname().machine, os.uname().machine), "os": "linux"}
    with tarfile.open(dest, "w") as tar:
        _add(tar, "oci-layout", _dumps({"imageLayoutVersion": "1.0.0"}))
        layer_digest, layer_size = _blob(tar, layer)
        config = {
            **platform, "created": created, "config": img_config,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created": created, "created_by": "tools.engines"}],
        }
        cfg_digest, cfg_size = _blob(tar, _dumps(config))
        manifest = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest,
                       "size": cfg_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                        "size": layer_size}],
        }
        man_digest, man_size = _blob(tar, _dumps(manifest))
        index = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_digest,
                "size": man_size, "platform": platform,
                "annotations": {"io.containerd.image.name": ref,
                                "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1]},
            }],
        }
        _add(tar, "index.json", _dumps(index))
        docker_manifest = [{"Config": _blob_path(cfg_digest), "RepoTags": [ref],
                            "Layers": [_blob_path(layer_digest)]}]
        _add(tar, "manifest.json", _dumps(docker_manifest))
    os.chmod(dest, 0o644)
    return dest


def build_images(dest_dir: str, layer_tar: str | None = None) -> dict[str, str]:
    """The busybox image (``sh`` by default) and the CRI pause image
    (``sleep inf``: the sandbox is stopped with SIGKILL) as archives in
    ``dest_dir``, from ``layer_tar`` (a busybox rootfs tarball; made here when
    None); returns {ref: path}."""
    os.makedirs(dest_dir, exist_ok=True)
    layer = layer_tar or busybox_tar(os.path.join(dest_dir, "busybox-layer.tar"))
    try:
        return {
            BUSYBOX_REF: image_tar(os.path.join(dest_dir, "busybox-image.tar"), BUSYBOX_REF, layer,
                                   cmd=["sh"]),
            PAUSE_REF: image_tar(os.path.join(dest_dir, "pause-image.tar"), PAUSE_REF, layer,
                                 entrypoint=["/bin/sleep", "inf"]),
        }
    finally:
        if layer_tar is None:
            os.unlink(layer)


# -- daemons ------------------------------------------------------------------------


class EngineError(RuntimeError):
    pass


def missing_binaries(*paths: str) -> list[str]:
    return [p for p in paths if not os.access(p, os.X_OK)]


def toml_str(s: str) -> str:
    return json.dumps(s)  # a TOML basic string has JSON's escapes


def _tail(path: str, n: int = 30) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def _wait_for(what: str, ok: Callable[[], bool], proc: subprocess.Popen[bytes], log: str,
              timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if proc.poll() is not None:
            raise EngineError(f"{what} exited with status {proc.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise EngineError(f"{what} not ready after {timeout:.0f}s:\n{_tail(log)}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM a process that is not our child; SIGKILL after ``timeout``."""
    _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill(pid, signal.SIGKILL)


def pids_with_arg(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``text``."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            out.append(int(d))
    return out


def cgroup_dirs(parent: str) -> list[str]:
    """``/sys/fs/cgroup/<hierarchy>/<parent>`` and every directory below it,
    in every mounted hierarchy, deepest first."""
    root = "/sys/fs/cgroup"
    found = []
    try:
        hierarchies = sorted(os.listdir(root))
    except OSError:
        return []
    for h in hierarchies:
        top = os.path.join(root, h, parent.strip("/"))
        if not os.path.isdir(top):
            continue
        for d, _subdirs, _files in os.walk(top):
            found.append(d)
    return sorted(found, key=len, reverse=True)


def remove_cgroups(parent: str) -> None:
    """rmdir ``parent`` (see cgroup_dirs) wherever it is empty of processes."""
    for d in cgroup_dirs(parent):
        try:
            os.rmdir(d)
        except OSError:
            pass


@dataclass
class _Confined:
    """An engine whose config, state and sockets all live under ``base``."""

    base: str

    def __post_init__(self) -> None:
        self.base = os.path.abspath(self.base)

    def path(self, *parts: str) -> str:
        return os.path.join(self.base, *parts)


@dataclass
class Containerd(_Confined):
    """containerd confined to ``base``.  ``runtimes`` maps a CRI runtime
    handler name to a runc-compatible binary (``io.containerd.runc.v2`` with
    ``BinaryName``); ctr passes its own with ``--runc-binary``."""

    runtimes: dict[str, str] = field(default_factory=dict)
    sandbox_image: str = PAUSE_REF
    proc: subprocess.Popen[bytes] | None = None
    # containerd 1.6's shims make SHIM_DIR/s (their sockets) and
    # SHIM_DIR/runc/<namespace> whatever the config says; stop() removes
    # what of it was not there before start() and is empty.
    SHIM_DIR = "/run/containerd"
    _made_shim_dir: bool = field(default=False, init=False, repr=False)

    @property
    def socket(self) -> str:
        return self.path("containerd.sock")

    @property
    def conf(self) -> str:
        return self.path("config.toml")

    @property
    def log(self) -> str:
        return self.path("containerd.log")

    @property
    def fifo_dir(self) -> str:
        """For ``ctr run/task exec --fifo-dir`` (default /run/containerd/fifo)."""
        return self.path("fifo")

    def runtime_root(self, handler: str) -> str:
        """A handler's ``Root`` option: its runtime gets ``--root <this>/<namespace>``."""
        return self.path("rt", handler)

    def config(self) -> str:
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        default = "runc" if "runc" in self.runtimes else next(iter(self.runtimes), "runc")
        lines = [
            "version = 2",
            f"root = {toml_str(self.path('root'))}",
            f"state = {toml_str(self.path('state'))}",
            'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",'
            ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
            "",
            "[grpc]", f"  address = {toml_str(self.socket)}",
            "[ttrpc]", f"  address = {toml_str(self.socket + '.ttrpc')}",
            "",
            '[plugins."io.containerd.internal.v1.opt"]', f"  path = {toml_str(self.path('opt'))}",
            f"[{cri}]",
            f"  sandbox_image = {toml_str(self.sandbox_image)}",
            "  restrict_oom_score_adj = true",
            "  disable_apparmor = true",
            '  stream_server_port = "0"',
            f"[{cri}.cni]",
            f"  bin_dir = {toml_str(self.path('cni', 'bin'))}",
            f"  conf_dir = {toml_str(self.path('cni', 'conf'))}",
            f"[{cri}.containerd]",
            '  snapshotter = "native"',
            f"  default_runtime_name = {toml_str(default)}",
        ]
        for name, binary in self.runtimes.items():
            key = name if name.replace("-", "").replace("_", "").isalnum() else toml_str(name)
            rt = f"{cri}.containerd.runtimes.{key}"
            lines += [
                f"[{rt}]", '  runtime_type = "io.containerd.runc.v2"',
                f"[{rt}.options]",
                f"  BinaryName = {toml_str(binary)}",
                f"  Root = {toml_str(self.runtime_root(name))}",
                "  SystemdCgroup = false",
            ]
        return "\n".join(lines) + "\n"

    def env(self) -> dict[str, str]:
        return {"PATH": BASE_PATH, "LANG": "C.UTF-8", "HOME": "/root"}

    def start(self, timeout: float = 30) -> None:
        os.makedirs(self.base, mode=0o711, exist_ok=True)
        for d in ("cni/bin", "cni/conf", "opt", "fifo"):
            os.makedirs(self.path(d), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(self.config())
        self._made_shim_dir = not os.path.exists(self.SHIM_DIR)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([CONTAINERD, "--config", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=self.env(), cwd="/",
                                         start_new_session=True)
        _wait_for("containerd", lambda: self.ctr("version").returncode == 0, self.proc, self.log, timeout)

    def shims(self) -> list[int]:
        """The shims this containerd started (they outlive it)."""
        return pids_with_arg(f"-address {self.socket} ")

    def clean(self, namespace: str) -> None:
        """Kill and delete every task and container of ``namespace``."""
        for tid in self.ctr("tasks", "ls", "-q", namespace=namespace).stdout.split():
            self.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", tid, namespace=namespace)
            self.ctr("tasks", "delete", "--force", tid, namespace=namespace)
        for cid in self.ctr("containers", "ls", "-q", namespace=namespace).stdout.split():
            self.ctr("containers", "delete", cid, namespace=namespace)

    def drain(self) -> None:
        """Delete every task and container of every namespace."""
        for ns in self.ctr("namespaces", "ls", "-q").stdout.split():
            self.clean(ns)

    def stop(self) -> None:
        """Drain, stop containerd, and kill any shim of it still there."""
        if self.proc is not None and self.proc.poll() is None:
            self.drain()
        _stop(self.proc, timeout=20)
        self.proc = None
        for pid in self.shims():
            _kill(pid, signal.SIGKILL)
        if self._made_shim_dir:
            for d, _subdirs, _files in sorted(os.walk(self.SHIM_DIR), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(d)
                except OSError:
                    pass

    def ctr_argv(self, *args: str, namespace: str = "default") -> list[str]:
        return [CTR, "--address", self.socket, "--namespace", namespace, *args]

    def ctr(self, *args: str, namespace: str = "default", input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.ctr_argv(*args, namespace=namespace), input=input, capture_output=True,
                              text=True, timeout=timeout, env=self.env(), cwd="/",
                              stdin=None if input is not None else subprocess.DEVNULL)

    def import_image(self, tar: str, namespace: str) -> None:
        r = self.ctr("images", "import", "--snapshotter", "native", tar, namespace=namespace, timeout=120)
        if r.returncode != 0:
            raise EngineError(f"ctr images import {tar} failed ({r.returncode}): {r.stderr.strip()}")


@dataclass
class Dockerd(_Confined):
    """dockerd confined to ``base``, on the containerd at
    ``containerd_socket``; ``runtimes`` maps a Docker runtime name to a
    runc-compatible binary (daemon.json ``runtimes``)."""

    containerd_socket: str
    runtimes: dict[str, str] = field(default_factory=dict)
    default_runtime: str | None = None
    cgroup_parent: str = "/pyoci-e2e-docker"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return self.path("docker.sock")

    @property
    def exec_root(self) -> str:
        return self.path("run")

    @property
    def log(self) -> str:
        return self.path("dockerd.log")

    @property
    def conf(self) -> str:
        return self.path("daemon.json")

    @property
    def runtime_root(self) -> str:
        """The runtimes' ``--root``: dockerd 20.10 gives every runtime
        ``<exec-root>/runtime-runc/<containerd namespace>``."""
        return os.path.join(self.exec_root, "runtime-runc", "moby")

    def daemon_json(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "data-root": self.path("data"), "exec-root": self.exec_root, "pidfile": self.path("dockerd.pid"),
            "hosts": [f"unix://{self.socket}"], "containerd": self.containerd_socket,
            "storage-driver": "vfs", "bridge": "none", "iptables": False, "ip-masq": False,
            "ip-forward": False, "userland-proxy": False, "cgroup-parent": self.cgroup_parent,
            "exec-opts": ["native.cgroupdriver=cgroupfs"],
            "runtimes": {name: {"path": path} for name, path in self.runtimes.items()},
        }
        if self.default_runtime:
            conf["default-runtime"] = self.default_runtime
        return conf

    def env(self) -> dict[str, str]:
        return {"PATH": BASE_PATH, "LANG": "C.UTF-8", "HOME": "/root", "DOCKER_CONFIG": self.path("client")}

    def _write_conf(self) -> None:
        os.makedirs(self.base, mode=0o711, exist_ok=True)
        os.makedirs(self.path("client"), exist_ok=True)
        with open(self.conf, "w") as f:
            json.dump(self.daemon_json(), f, indent=2)
        os.chmod(self.conf, 0o644)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as log:
            return subprocess.Popen([DOCKERD, "--config-file", self.conf], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, env=self.env(), cwd="/", start_new_session=True)

    def start(self, timeout: float = 60) -> None:
        self._write_conf()
        self.proc = self._spawn()
        _wait_for("dockerd", lambda: self.docker("version").returncode == 0, self.proc, self.log, timeout)

    def drain(self) -> None:
        """Remove every container."""
        ids = self.docker("ps", "-aq").stdout.split()
        if ids:
            self.docker("rm", "--force", *ids, timeout=120)

    def stop(self) -> None:
        """Drain, then stop dockerd."""
        if self.proc is not None and self.proc.poll() is None:
            self.drain()
        _stop(self.proc, timeout=30)
        self.proc = None

    def argv(self, *args: str) -> list[str]:
        return [DOCKER, "--host", f"unix://{self.socket}", *args]

    def docker(self, *args: str, input: str | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), input=input, capture_output=True, text=True,
                              timeout=timeout, env=self.env(), cwd="/",
                              stdin=None if input is not None else subprocess.DEVNULL)

    def load_image(self, tar: str) -> None:
        r = self.docker("load", "--input", tar, timeout=120)
        if r.returncode != 0:
            raise EngineError(f"docker load {tar} failed ({r.returncode}): {r.stderr.strip()}")


@dataclass
class RootlessDockerd(Dockerd):
    """Rootless Docker: dockerd-rootless.sh (RootlessKit, then dockerd with
    its own containerd, both in RootlessKit's user and mount namespaces) run
    as ``user``, with everything under ``base`` (which that user owns).

    RootlessKit's network is the host's (``--net=host``, no port driver):
    its usual slirp4netns cannot open /dev/net/tun on this project's machines
    (mode 0600).  Containers use ``--network none``.  On cgroup v1 dockerd
    runs its containers without cgroups (``Cgroup Driver: none``)."""

    user: str = ""
    uid: int = -1
    gid: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        pw = pwd.getpwnam(self.user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    @property
    def runtime_root(self) -> str:
        return os.path.join(self.exec_root, "runtime-runc", "moby")

    def daemon_json(self) -> dict[str, Any]:
        conf = super().daemon_json()
        for key in ("containerd", "cgroup-parent", "exec-opts"):
            del conf[key]           # dockerd starts its own containerd; no cgroups on v1
        return conf

    def user_env(self) -> dict[str, str]:
        return {"PATH": BASE_PATH, "LANG": "C.UTF-8", "HOME": self.path("home"), "USER": self.user,
                "LOGNAME": self.user, "XDG_RUNTIME_DIR": self.path("xdg"),
                "DOCKERD_ROOTLESS_ROOTLESSKIT_NET": "host",
                "DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER": "none",
                "DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS": f"--state-dir={self.path('rootlesskit')}"}

    def _spawn(self) -> subprocess.Popen[bytes]:
        for d in ("home", "xdg"):
            os.makedirs(self.path(d), mode=0o700, exist_ok=True)
        for d in (self.base, self.path("home"), self.path("xdg")):
            os.chown(d, self.uid, self.gid)
        os.chmod(self.base, 0o755)
        with open(self.log, "ab") as log:
            return subprocess.Popen(["/bin/sh", DOCKERD_ROOTLESS, "--config-file", self.conf],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.user_env(),
                                    cwd="/", start_new_session=True, user=self.uid, group=self.gid,
                                    extra_groups=[])


def default_runtimes() -> dict[str, str]:
    """pyoci (the launcher of this venv) and runc, when installed."""
    rts = {"pyoci": pyoci_launcher()}
    runc = runc_path()
    if runc:
        rts["runc"] = runc
    return rts


# -- command line -------------------------------------------------------------------

USAGE = ("usage: python -m tools.engines start|env|stop DIR\n"
         "  start: containerd (CRI handlers pyoci and runc) and dockerd (runtimes pyoci and runc-bin)\n"
         "         under DIR, with " + BUSYBOX_REF + " and " + PAUSE_REF + " imported\n"
         "         (ctr namespace default, CRI's k8s.io, docker); the daemons keep running\n"
         "  env:   print the ctr and docker command prefixes for DIR\n"
         "  stop:  remove every container and stop the daemons started by `start DIR`")


def _daemons(base: str) -> tuple[Containerd, Dockerd]:
    rts = default_runtimes()
    ctd = Containerd(os.path.join(base, "containerd"), rts)
    dkr = Dockerd(os.path.join(base, "docker"), ctd.socket,
                  {("runc-bin" if n == "runc" else n): p for n, p in rts.items()})
    return ctd, dkr


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "env", "stop"):
        print(USAGE, file=sys.stderr)
        return 2
    action, base = argv[0], os.path.abspath(argv[1])
    ctd, dkr = _daemons(base)
    pidfile = os.path.join(base, "daemons.pid")
    if action == "start":
        with tempfile.TemporaryDirectory(prefix="pyoci-img-") as tmp:
            images = build_images(tmp)
            ctd.start()
            for ns in ("default", "k8s.io"):
                for tar in images.values():
                    ctd.import_image(tar, ns)
            dkr.start()
            dkr.load_image(images[BUSYBOX_REF])
        assert ctd.proc is not None and dkr.proc is not None
        with open(pidfile, "w") as f:
            f.write(f"{ctd.proc.pid} {dkr.proc.pid}\n")
    elif action == "stop":
        try:
            with open(pidfile) as f:
                ctd_pid, dkr_pid = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            print(f"no {pidfile}", file=sys.stderr)
            return 1
        dkr.drain()
        _terminate(dkr_pid, 30)
        ctd.drain()
        _terminate(ctd_pid, 20)
        for pid in ctd.shims():
            _kill(pid, signal.SIGKILL)
        os.unlink(pidfile)
        return 0
    print(" ".join(ctd.ctr_argv()))
    print(f"DOCKER_CONFIG={dkr.path('client')} " + " ".join(dkr.argv()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
