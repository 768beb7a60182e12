"""Docker 20.10 (dockerd on the session's containerd, and Rootless Docker
under RootlessKit) driving pyoci and runc.

The rootful tests run against one dockerd per runtime (module-scoped,
parametrized), started by the test with a daemon.json of its own: vfs
storage, no bridge, no iptables, its own cgroup parent, the runtime
registered under ``runtimes`` and made the ``default-runtime``.  The tests
still pass ``--runtime`` where the issue's commands do; test_default_runtime
uses none.  Containers use ``--network none`` (Docker still adds its
``libnetwork-setkey`` prestart hook, run through /proc/<dockerd>/exe).

Rootless Docker (test_rootless) runs dockerd-rootless.sh as the e2e user
with RootlessKit's host network (slirp4netns needs /dev/net/tun, which is
0600 here); dockerd then starts its own containerd in RootlessKit's
namespaces, and on cgroup v1 runs containers without cgroups.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.e2e import PYOCI, TEST_USER, engine_cgroup, engine_runtimes, ensure_user, explain, processes_of
from helpers.e2e_engines import LeakCheck, cgroup_file, mount_points, readme_block, runtime_state
from helpers.e2e_flows import SIGNAL_SCRIPT, name
from helpers.ocitest import wait_for

from tools import engines
from tools.engines import BUSYBOX_REF, Containerd, Dockerd, RootlessDockerd

MiB = 1 << 20


def docker_name(runtime: str) -> str:
    """The name a runtime is registered under (Docker reserves "runc")."""
    return "runc-bin" if runtime == "runc" else runtime


def _need_docker() -> None:
    missing = engines.missing_binaries(engines.DOCKERD, engines.DOCKER)
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install docker.io)")


@dataclass
class Docker:
    """One dockerd, bound to one runtime."""

    daemon: Dockerd
    runtime: str        # as registered with dockerd
    binary: str

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.daemon.docker(*args, timeout=timeout)

    def ok(self, *args: str, timeout: float = 60) -> str:
        r = self(*args, timeout=timeout)
        assert r.returncode == 0, explain(r)
        return r.stdout

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``docker run --runtime R --network none ARGS``"""
        return self("run", "--runtime", self.runtime, "--network", "none", *args, timeout=timeout)

    def inspect(self, cid: str, fmt: str) -> str:
        return self.ok("inspect", "--format", fmt, cid).strip()

    def state(self, cid: str) -> dict[str, object] | None:
        return runtime_state(self.binary, self.daemon.runtime_root, cid)

    def listing(self) -> list[str]:
        return self("ps", "-a", "--format", "{{.ID}} {{.Status}} {{.Names}}").stdout.splitlines()

    def start_signal_container(self, *extra: str) -> str:
        n = name()
        r = self.run("--detach", "--name", n, *extra, BUSYBOX_REF, "sh", "-c", SIGNAL_SCRIPT)
        assert r.returncode == 0, explain(r)
        wait_for(lambda: "ready" in self.ok("logs", n), what=f"{n} to print ready")
        return n


@pytest.fixture(scope="module", params=["pyoci", "runc"])
def dockerd(request: pytest.FixtureRequest, containerd: Containerd, engine_images: dict[str, str],
            e2e_base: Path) -> Iterator[Docker]:
    _need_docker()
    binary = engine_runtimes().get(request.param)
    if binary is None:
        pytest.skip(f"{request.param} not installed")
    rt = docker_name(request.param)
    daemon = Dockerd(str(e2e_base / f"docker-{request.param}"), containerd.socket, {rt: binary},
                     default_runtime=rt, cgroup_parent=engine_cgroup(f"docker-{request.param}"))
    try:
        daemon.start()
        daemon.load_image(engine_images[BUSYBOX_REF])
        yield Docker(daemon, rt, binary)
    finally:
        daemon.stop()
        engines.remove_cgroups(daemon.cgroup_parent)


@pytest.fixture
def docker(dockerd: Docker, containerd: Containerd, e2e_base: Path) -> Iterator[Docker]:
    assert containerd.proc is not None and dockerd.daemon.proc is not None
    leak = LeakCheck(str(e2e_base), {containerd.proc.pid, dockerd.daemon.proc.pid},
                     [dockerd.daemon.runtime_root], dockerd.daemon.cgroup_parent, dockerd.listing)
    yield dockerd
    leak.assert_clean(dockerd.daemon.drain)


def test_run_rm_echo_and_exit_status(docker: Docker) -> None:
    r = docker.run("--rm", BUSYBOX_REF, "sh", "-c",
                   "echo hello from $(hostname | wc -c) $0; cat /proc/sys/net/ipv4/ping_group_range; "
                   "grep ^Seccomp: /proc/self/status; exit 5")
    assert r.returncode == 5, explain(r)
    # the 12-digit short id as hostname; Docker's sysctls and seccomp profile
    assert r.stdout.split("\n") == ["hello from 13 sh", "0\t2147483647", "Seccomp:\t2", ""], explain(r)


def test_command_errors(docker: Docker) -> None:
    """Docker's exit statuses for a command that cannot run (127: not found,
    126: cannot be invoked) come from the runtime's error text."""
    for cmd, status, text in (("/nonexistent", 127, "no such file or directory"),
                              ("no-such-command", 127, "executable file not found"),
                              ("/etc/passwd", 126, "permission denied")):
        r = docker.run("--rm", BUSYBOX_REF, cmd)
        assert r.returncode == status, explain(r)
        assert re.search(f"OCI runtime create failed: .*{cmd}.*{text}", r.stderr), explain(r)


def test_default_runtime(docker: Docker) -> None:
    """Without --runtime: dockerd's default-runtime, whose `--version`
    commit line `docker info` shows."""
    version = subprocess.run([docker.binary, "--version"], capture_output=True, text=True, check=True).stdout
    commit = re.search(r"^commit: (\S+)", version, re.M)
    assert commit, version
    info = docker.ok("info", "--format", "{{.DefaultRuntime}} {{.RuncCommit.ID}}").split()
    assert info == [docker.runtime, commit.group(1)], info
    cid = docker.ok("run", "--detach", "--network", "none", BUSYBOX_REF, "sleep", "1000").strip()
    try:
        assert docker.inspect(cid, "{{.HostConfig.Runtime}}") == docker.runtime
        st = docker.state(cid)
        assert st is not None and st["status"] == "running", st
        assert st["pid"] == int(docker.inspect(cid, "{{.State.Pid}}"))
    finally:
        docker.ok("rm", "--force", cid)


def test_exec_top_pause_update_stop(docker: Docker) -> None:
    n = docker.start_signal_container("--memory", "128m")
    cid = docker.inspect(n, "{{.Id}}")
    pid = int(docker.inspect(n, "{{.State.Pid}}"))
    parent = docker.daemon.cgroup_parent
    try:
        # Docker's prestart hook (/proc/<dockerd>/exe libnetwork-setkey) ran:
        # libnetwork bound the container's network namespace at its SandboxKey
        key = docker.inspect(n, "{{.NetworkSettings.SandboxKey}}")
        netns = [ln.split()[3] for ln in Path("/proc/self/mountinfo").read_text().splitlines()
                 if ln.split()[4] == key]
        assert netns == [os.readlink(f"/proc/{pid}/ns/net")], (key, netns)

        r = docker("exec", n, "sh", "-c", "echo in-exec; echo to-stderr >&2; exit 6")
        assert (r.returncode, r.stdout, r.stderr) == (6, "in-exec\n", "to-stderr\n"), explain(r)

        # top: `ps --format json` gives the pids, dockerd runs ps(1) for the rows
        rows = docker.ok("top", n, "-o", "pid,args").splitlines()[1:]
        assert any(int(row.split()[0]) == pid and "sh -c trap" in row for row in rows), rows

        docker.ok("pause", n)
        assert docker.inspect(n, "{{.State.Status}} {{.State.Paused}}") == "paused true"
        assert cgroup_file(parent, cid, "freezer", "freezer.state") == "FROZEN"
        docker.ok("unpause", n)
        assert docker.inspect(n, "{{.State.Status}}") == "running"
        assert cgroup_file(parent, cid, "freezer", "freezer.state") == "THAWED"

        # update: `update --resources -` with Docker's resources JSON on stdin
        assert cgroup_file(parent, cid, "memory", "memory.limit_in_bytes") == str(128 * MiB)
        docker.ok("update", "--memory", "64m", "--memory-swap", "96m", n)
        assert cgroup_file(parent, cid, "memory", "memory.limit_in_bytes") == str(64 * MiB)
        assert cgroup_file(parent, cid, "memory", "memory.memsw.limit_in_bytes") == str(96 * MiB)

        # stop: SIGTERM reaches the trap
        docker.ok("stop", "--time", "10", n)
        assert docker.inspect(n, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
        assert "got-term" in docker.ok("logs", n)
    finally:
        docker("rm", "--force", n)


def test_stop_timeout_and_rm_force(docker: Docker) -> None:
    # sleep is pid 1 and ignores SIGTERM: `docker stop` kills it after the timeout
    n = name()
    r = docker.run("--detach", "--name", n, BUSYBOX_REF, "sleep", "1000")
    assert r.returncode == 0, explain(r)
    docker.ok("stop", "--time", "1", n)
    assert docker.inspect(n, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    docker.ok("rm", n)
    # rm -f of a running container
    n = docker.start_signal_container()
    pid = int(docker.inspect(n, "{{.State.Pid}}"))
    docker.ok("rm", "--force", n)
    assert docker("inspect", n).returncode != 0
    assert not os.path.exists(f"/proc/{pid}/cmdline") or Path(f"/proc/{pid}/cmdline").read_bytes() == b""


# -- Rootless Docker ------------------------------------------------------------------


def test_rootless(runtime: tuple[str, str], engine_images: dict[str, str], e2e_base: Path) -> None:
    _need_docker()
    missing = engines.missing_binaries(engines.ROOTLESSKIT, engines.DOCKERD_ROOTLESS, "/usr/bin/newuidmap")
    if missing:
        pytest.skip(f"{', '.join(missing)} missing (apt-get install rootlesskit uidmap)")
    ensure_user(TEST_USER)
    rt_name, binary = runtime
    r = subprocess.run(["runuser", "-u", TEST_USER, "--", "test", "-x", binary])
    if r.returncode != 0:
        pytest.skip(f"{TEST_USER} cannot run {binary} (a parent directory is closed to other users)")
    rt = docker_name(rt_name)
    base = e2e_base / f"rootless-docker-{rt_name}"
    daemon = RootlessDockerd(str(base), "", {rt: binary}, default_runtime=rt, user=TEST_USER)
    docker = Docker(daemon, rt, binary)
    try:
        daemon.start()
        assert "rootless" in docker.ok("info", "--format", "{{.SecurityOptions}}")
        daemon.load_image(engine_images[BUSYBOX_REF])

        r = docker.run("--rm", BUSYBOX_REF, "sh", "-c", "echo hello; cat /proc/self/uid_map; exit 5")
        assert r.returncode == 5, explain(r)
        out = r.stdout.splitlines()
        assert out[0] == "hello", explain(r)
        uid = str(daemon.uid)
        assert out[1].split() == ["0", uid, "1"], explain(r)   # root in the container is the user

        n = docker.start_signal_container()
        pid = int(docker.inspect(n, "{{.State.Pid}}"))
        assert os.stat(f"/proc/{pid}").st_uid == daemon.uid
        # the named runtime made it: its state is under the runtime's --root
        assert (Path(daemon.runtime_root) / docker.inspect(n, "{{.Id}}") / "state.json").exists()
        r = docker("exec", n, "sh", "-c", "echo in-exec; exit 6")
        assert (r.returncode, r.stdout) == (6, "in-exec\n"), explain(r)
        # (no `docker top`: runc's `ps` needs the container's cgroup, and
        # there is none here)
        docker.ok("stop", "--time", "10", n)
        assert docker.inspect(n, "{{.State.ExitCode}}") == "0"
        docker.ok("rm", n)
        assert docker.listing() == []
    finally:
        daemon.stop()
    # everything went with RootlessKit: no process, mount or runtime state
    left = [desc for _, desc in processes_of(str(base), set(), set())]
    left += [f"mount left: {m}" for m in mount_points(str(base))]
    state = Path(daemon.runtime_root)
    left += [f"runtime state left: {p}" for p in (state.iterdir() if state.is_dir() else [])]
    assert not left, "left behind after the test:\n  " + "\n  ".join(left)


def test_readme_daemon_json() -> None:
    """README's daemon.json registers pyoci as the tests' dockerd does."""
    conf = json.loads(readme_block("json", '"runtimes"').replace("/path/to/checkout/.venv/bin/pyoci", PYOCI))
    ours = Dockerd("/x", "/x.sock", {"pyoci": PYOCI}).daemon_json()
    assert conf == {"runtimes": ours["runtimes"]}, conf
