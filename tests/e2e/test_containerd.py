"""containerd 1.6 (ctr, and the runc shim io.containerd.runc.v2) driving
pyoci and runc.

Every test runs once per runtime: ``ctr run --runc-binary <runtime>`` sets
the shim's ``BinaryName`` option, as a runtime handler of containerd's
config does (test_cri.py uses those), and ``--runc-root`` its ``Root``: the
runtime gets ``--root <root>/e2e`` (the containerd namespace), so a state
directory there proves the named runtime made the container.  containerd and
the images come from conftest.py (one containerd for the session, native
snapshotter); the leak checks are helpers.e2e_engines.LeakCheck's.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.e2e import CTR_NAMESPACE, PYOCI, engine_cgroup, explain
from helpers.e2e_engines import LeakCheck, cgroup_file, cgroup_of, readme_block, runtime_state
from helpers.e2e_flows import name
from helpers.ocitest import wait_for

from tools import engines
from tools.engines import BUSYBOX_REF, Containerd
from tools.podman import run_in_pty

# sh is pid 1 of its own pid namespace: only trapped signals reach it.
SIGNAL_SCRIPT = ('trap "echo got-usr1" USR1; trap "echo got-term; exit 7" TERM; '
                 'echo ready; while :; do sleep 0.1; done')


class Ctr:
    """``ctr --namespace e2e`` with one runtime (``runtime``: (name, binary))."""

    def __init__(self, ctd: Containerd, runtime: tuple[str, str]) -> None:
        self.ctd = ctd
        self.name, self.binary = runtime
        self.runc_root = ctd.path("rt-ctr", self.name)
        self.state_dir = os.path.join(self.runc_root, CTR_NAMESPACE)   # the runtime's --root
        self.cgroup_parent = engine_cgroup("ctr")

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.ctd.ctr(*args, namespace=CTR_NAMESPACE, timeout=timeout)

    def ok(self, *args: str, timeout: float = 60) -> str:
        r = self(*args, timeout=timeout)
        assert r.returncode == 0, explain(r)
        return r.stdout

    def run_argv(self, cid: str, *args: str, flags: tuple[str, ...] = ()) -> list[str]:
        """The arguments of ``ctr run`` for the busybox image."""
        return ["run", "--runc-binary", self.binary, "--runc-root", self.runc_root,
                "--fifo-dir", self.ctd.fifo_dir, "--snapshotter", "native",
                "--cgroup", f"{self.cgroup_parent}/{cid}", *flags, BUSYBOX_REF, cid, *args]

    def run(self, cid: str, *args: str, flags: tuple[str, ...] = (),
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self(*self.run_argv(cid, *args, flags=flags), timeout=timeout)

    def task_status(self, cid: str) -> tuple[int, str]:
        """(pid, STATUS) from ``ctr tasks ls``."""
        for line in self.ok("tasks", "ls").splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return int(fields[1]), fields[2]
        raise AssertionError(f"no task {cid} in `ctr tasks ls`")

    def state(self, cid: str) -> dict[str, object] | None:
        return runtime_state(self.binary, self.state_dir, cid)

    def listing(self) -> list[str]:
        return ([f"container {c}" for c in self("containers", "ls", "-q").stdout.split()]
                + [f"task {t}" for t in self("tasks", "ls", "-q").stdout.split()])

    def cgroup(self, cid: str, controller: str, file: str) -> str:
        return cgroup_file(self.cgroup_parent, cid, controller, file)


@pytest.fixture
def ctr(containerd: Containerd, runtime: tuple[str, str], e2e_base: Path) -> Iterator[Ctr]:
    assert containerd.proc is not None
    c = Ctr(containerd, runtime)
    leak = LeakCheck(str(e2e_base), {containerd.proc.pid}, [c.state_dir], c.cgroup_parent, c.listing)
    yield c
    leak.assert_clean(lambda: containerd.clean(CTR_NAMESPACE))


def start_detached(ctr: Ctr, log: Path, *flags: str) -> tuple[str, int]:
    """``ctr run -d`` of SIGNAL_SCRIPT with its output in ``log``; returns
    (id, init pid) once its traps are set."""
    cid = name()
    r = ctr.run(cid, "sh", "-c", SIGNAL_SCRIPT, flags=("--detach", "--log-uri", f"file://{log}", *flags))
    assert r.returncode == 0, explain(r)
    wait_for(lambda: log.exists() and "ready" in log.read_text(), what=f"{cid} to print ready")
    pid, status = ctr.task_status(cid)
    assert status == "RUNNING"
    return cid, pid


def test_run_rm_echo_and_exit_status(ctr: Ctr) -> None:
    r = ctr.run(name(), "sh", "-c", "echo hello from $(cat /proc/1/comm); exit 3", flags=("--rm",))
    assert r.returncode == 3, explain(r)
    assert r.stdout == "hello from sh\n", explain(r)
    r = ctr.run(name(), "/bin/true", flags=("--rm", "--no-pivot"))
    assert r.returncode == 0, explain(r)


def test_create_error_reaches_ctr(ctr: Ctr) -> None:
    """A failed create: the shim reports the runtime's last error line from
    --log (log.json in the bundle) as "OCI runtime create failed: <msg>"."""
    r = ctr.run(name(), "/nonexistent", flags=("--rm",))
    assert r.returncode != 0, explain(r)
    assert re.search(r"OCI runtime create failed: .*/nonexistent.*no such file or directory", r.stderr), \
        explain(r)


def test_tty(ctr: Ctr, tmp_path: Path) -> None:
    """``ctr run -t`` and ``ctr tasks exec -t``: the runtime gets
    --console-socket and sends the pty master to the shim."""
    argv = ctr.run_argv(name(), "sh", "-c", "tty; exit 2", flags=("--rm", "--tty"))
    rc, out = run_in_pty(ctr.ctd.ctr_argv(*argv, namespace=CTR_NAMESPACE), ctr.ctd.env(), steps=[])
    assert rc == 2, out
    assert re.search(r"^/dev/pts/\d+\r*$", out, re.M), out
    cid, _ = start_detached(ctr, tmp_path / "out.log")
    try:
        argv = ["tasks", "exec", "--tty", "--exec-id", "t1", "--fifo-dir", ctr.ctd.fifo_dir, cid,
                "sh", "-c", "tty; exit 3"]
        rc, out = run_in_pty(ctr.ctd.ctr_argv(*argv, namespace=CTR_NAMESPACE), ctr.ctd.env(), steps=[])
        assert rc == 3, out
        assert re.search(r"^/dev/pts/\d+\r*$", out, re.M), out
    finally:
        ctr("tasks", "delete", "--force", cid)
        ctr("containers", "delete", cid)


def test_exec_ps_pause_resume_kill(ctr: Ctr, tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    cid, pid = start_detached(ctr, log)
    state = ctr.state(cid)
    assert state is not None and state["status"] == "running" and state["pid"] == pid, state

    # exec: --process, --detach, --pid-file; its exit status comes back
    r = ctr("tasks", "exec", "--exec-id", "e1", "--fifo-dir", ctr.ctd.fifo_dir, cid,
            "sh", "-c", "echo in-exec; echo to-stderr >&2; exit 4")
    assert (r.returncode, r.stdout, r.stderr) == (4, "in-exec\n", "to-stderr\n"), explain(r)
    ctr.ok("tasks", "exec", "--detach", "--exec-id", "e2", "--fifo-dir", ctr.ctd.fifo_dir, cid,
           "sleep", "1000")

    # ps: `ps --format json`; the init and the exec'd sleep are listed, and
    # every pid is in the container's cgroup
    def cmdline(p: int) -> bytes:
        try:
            return Path(f"/proc/{p}/cmdline").read_bytes()
        except FileNotFoundError:
            return b""          # one of the init's short-lived `sleep 0.1`

    def listed() -> list[int]:
        pids = [int(line.split()[0]) for line in ctr.ok("tasks", "ps", cid).splitlines()[1:]]
        return pids if b"sleep\x001000\x00" in map(cmdline, pids) else []

    pids = wait_for(listed, what="the exec'd sleep in `ctr tasks ps`")
    assert pid in pids, pids
    for p in pids:
        try:
            assert cgroup_of(p, "freezer") == f"{ctr.cgroup_parent}/{cid}"
        except FileNotFoundError:
            pass

    # pause / resume: the freezer, the task status and the runtime's status agree
    ctr.ok("tasks", "pause", cid)
    assert ctr.task_status(cid) == (pid, "PAUSED")
    assert ctr.cgroup(cid, "freezer", "freezer.state") == "FROZEN"
    assert (ctr.state(cid) or {}).get("status") == "paused"
    ctr.ok("tasks", "resume", cid)
    assert ctr.task_status(cid) == (pid, "RUNNING")
    assert ctr.cgroup(cid, "freezer", "freezer.state") == "THAWED"

    # kill: a signal reaches the init's trap; TERM ends it with its own status
    ctr.ok("tasks", "kill", "--signal", "SIGUSR1", cid)
    wait_for(lambda: "got-usr1" in log.read_text(), what="got-usr1")
    ctr.ok("tasks", "kill", "--signal", "SIGTERM", cid)
    wait_for(lambda: ctr.task_status(cid)[1] == "STOPPED", what=f"{cid} to stop")
    assert "got-term" in log.read_text()
    r = ctr("tasks", "delete", cid)
    assert r.returncode == 0 and "exit code 7" in r.stderr, explain(r)
    ctr.ok("containers", "delete", cid)


def test_kill_all_and_force_delete(ctr: Ctr, tmp_path: Path) -> None:
    # kill --all: every process of the container, then delete
    cid, _ = start_detached(ctr, tmp_path / "a.log")
    ctr.ok("tasks", "exec", "--detach", "--exec-id", "e1", "--fifo-dir", ctr.ctd.fifo_dir, cid,
           "sleep", "1000")
    ctr.ok("tasks", "kill", "--all", "--signal", "SIGKILL", cid)
    wait_for(lambda: ctr.task_status(cid)[1] == "STOPPED", what=f"{cid} to stop")
    r = ctr("tasks", "delete", cid)
    assert r.returncode == 0 and "exit code 137" in r.stderr, explain(r)
    ctr.ok("containers", "delete", cid)
    # delete --force of a running task
    cid, pid = start_detached(ctr, tmp_path / "b.log")
    ctr.ok("tasks", "delete", "--force", cid)
    assert not os.path.exists(f"/proc/{pid}/cmdline") or Path(f"/proc/{pid}/cmdline").read_bytes() == b""
    ctr.ok("containers", "delete", cid)


def test_readme_handler_snippet(tmp_path: Path) -> None:
    """README's containerd runtime handler is what containerd reads, and what
    the tests' containerd (test_cri.py) is configured with."""
    if engines.missing_binaries(engines.CONTAINERD):
        pytest.skip("containerd not installed")
    snippet = readme_block("toml", "runtimes.pyoci").replace("/path/to/checkout/.venv/bin/pyoci", PYOCI)
    (tmp_path / "config.toml").write_text(snippet)
    r = subprocess.run([engines.CONTAINERD, "--config", str(tmp_path / "config.toml"), "config", "dump"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, explain(r)
    dumped = tomllib.loads(r.stdout)["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    ours = tomllib.loads(Containerd("/x", {"pyoci": PYOCI}).config())
    want = ours["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["pyoci"]
    assert dumped["pyoci"]["runtime_type"] == want["runtime_type"]
    del want["options"]["Root"]     # the tests' handlers keep their state in the session directory
    assert dumped["pyoci"]["options"] == want["options"], dumped["pyoci"]
