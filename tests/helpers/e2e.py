"""What the e2e tests (tests/e2e) share besides their fixtures: the
runtimes under test, the test user, the names of the engines' cgroups and
namespaces, ``Podman`` (one Podman setup bound to one runtime) and the
checks that nothing is left after a Podman test.

The fixtures and hooks that use them are in tests/e2e/conftest.py (its
docstring describes the suite); the Podman flows shared by the root and
rootless tests are in e2e_flows.py, the leak checks of the containerd, CRI
and Docker tests in e2e_engines.py.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.podman import IMAGE, PODMAN, PodmanEnv, runc_path

REPO = Path(__file__).resolve().parents[2]
PYOCI = str(REPO / ".venv" / "bin" / "pyoci")
RUNC = runc_path()
TEST_USER = os.environ.get("PYOCI_E2E_USER", "pyoci-e2e")
CLEANUP_WAIT = 10.0


def missing_prereq(podman: bool) -> str | None:
    """Why the e2e tests cannot run here (None: they can).  The engine tests
    (containerd, CRI, Docker) check for their own binaries in their fixtures."""
    if os.geteuid() != 0:
        return "e2e tests need root"
    if podman and (not os.path.exists(PODMAN)
                   or (not shutil.which("conmon") and not os.path.exists("/usr/bin/conmon"))):
        return "podman/conmon not installed"
    if not os.path.exists("/bin/busybox"):
        return "/bin/busybox missing (apt-get install busybox-static)"
    if not os.path.exists(PYOCI):
        return f"{PYOCI} missing (make the venv)"
    return None


def ensure_user(name: str) -> pwd.struct_passwd:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        r = subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"useradd {name} failed: {r.stderr.strip()}")
        pw = pwd.getpwnam(name)
    for f, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
        try:
            have = any(line.split(":")[0] in (name, str(pw.pw_uid)) for line in open(f))
        except OSError:
            have = False
        if not have:
            start = _free_subid_start(f)
            subprocess.run(["usermod", flag, f"{start}-{start + 65535}", name], check=True)
    return pw


def _free_subid_start(path: str) -> int:
    end = 100000
    try:
        for line in open(path):
            parts = line.strip().split(":")
            if len(parts) == 3:
                end = max(end, int(parts[1]) + int(parts[2]))
    except OSError:
        pass
    return end


# -- containerd, CRI and Docker (test_containerd.py, test_cri.py, test_docker.py) ---------

# containerd namespace of the ctr tests (CRI uses k8s.io, Docker moby).
CTR_NAMESPACE = "e2e"


def engine_cgroup(kind: str) -> str:
    """The cgroup parent of one engine's containers in this pytest run
    ("ctr", "cri", "docker-pyoci", ...): unique, so that the leak checks see
    only this run's containers, and removed when the engine stops."""
    return f"/pyoci-e2e-{os.getpid()}-{kind}"


def engine_runtimes() -> dict[str, str]:
    """Runtime name -> binary, as the engine tests register them."""
    return {"pyoci": PYOCI, **({"runc": RUNC} if RUNC else {})}


# -- Podman -----------------------------------------------------------------------------


class Podman:
    """One PodmanEnv bound to one runtime: ``pod("run", ...)``."""

    def __init__(self, env: PodmanEnv, runtime: str, name: str) -> None:
        self.env = env
        self.runtime = runtime
        self.name = name  # "pyoci" or "runc"
        self.image = IMAGE

    @property
    def rootless(self) -> bool:
        return self.env.rootless

    def __call__(self, *args: str, input: str | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.env.run("--runtime", self.runtime, *args, input=input, timeout=timeout)

    def ok(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        r = self(*args, input=input, timeout=timeout)
        assert r.returncode == 0, explain(r)
        return r.stdout

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``podman run --network=none ARGS``"""
        return self("run", "--network=none", *args, timeout=timeout)

    def pty(self, *args: str, steps: list[tuple[str, str]] | None = None,
            timeout: float = 30) -> tuple[int, str]:
        return self.env.run_pty("--runtime", self.runtime, *args, steps=steps, timeout=timeout)

    def container_ids(self) -> list[str]:
        out = self.env.run("ps", "-a", "-q", "--no-trunc").stdout
        return out.split()

    def inspect(self, name: str, fmt: str) -> str:
        return self.ok("inspect", "--format", fmt, name).strip()


def explain(r: subprocess.CompletedProcess[str]) -> str:
    cmd = " ".join(r.args) if isinstance(r.args, list) else str(r.args)
    return f"`{cmd}` -> rc {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"


def checked_podman(env: PodmanEnv, runtime: tuple[str, str]) -> Iterator[Podman]:
    """The body of the ``root_podman``/``rootless_podman`` fixtures: yields
    ``env`` bound to ``runtime`` (name, binary), then fails the test if one
    of its containers left something behind (after removing it)."""
    offset = os.path.getsize(env.events_file) if os.path.exists(env.events_file) else 0
    pod = Podman(env, runtime[1], runtime[0])
    yield pod
    ids = _ids_since(env.events_file, offset)
    problems = _wait_clean(env, ids)
    if problems:
        _force_clean(env, ids)
        pytest.fail("left behind after the test:\n  " + "\n  ".join(problems), pytrace=False)


# -- leak checks ------------------------------------------------------------------------


def _ids_since(events_file: str, offset: int) -> set[str]:
    ids: set[str] = set()
    try:
        with open(events_file) as f:
            f.seek(offset)
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("Type") == "container" and ev.get("ID"):
                    ids.add(ev["ID"])
    except OSError:
        pass
    return ids


def mounts_under(path: str, pid: str = "self") -> list[str]:
    """The mountinfo lines of ``pid`` whose mount point lies below ``path``."""
    # path + "/": the root setup's base (.../root) is a prefix of the
    # rootless one's (.../rootless)
    path = path.rstrip("/") + "/"
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return [line.strip() for line in f if path in line.split(" - ")[0]]
    except OSError:
        return []


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _our_processes(env: PodmanEnv, ids: set[str]) -> list[tuple[int, str]]:
    pause = env.pause_pid()
    return processes_of(env.base, ids, {pause} if pause else set())


def processes_of(base: str, ids: set[str], skip: set[int]) -> list[tuple[int, str]]:
    """Live processes (not zombies) that belong to the test setup under
    ``base``: its path or one of ``ids`` in their command line or
    environment, or their root inside ``base`` (a container's); ``skip``,
    this process and its parent are left out."""
    skip = skip | {os.getpid(), os.getppid()}
    base = base.rstrip("/") + "/"  # .../root is a prefix of .../rootless
    own_mntns = os.readlink("/proc/self/ns/mnt")
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in skip:
            continue
        stat = _read(f"/proc/{d}/stat")
        if not stat:
            continue
        state = stat.rsplit(")", 1)[-1].split()[0]
        if state == "Z":
            continue
        cmd = _read(f"/proc/{d}/cmdline")
        ours = base in cmd or any(i in cmd for i in ids) or base in _read(f"/proc/{d}/environ")
        root = ""
        if not ours:
            # A container process: its root ("/" in its own mountinfo) is a
            # directory of our storage (vfs: a bind of storage/vfs/dir/<id>).
            # readlink(/proc/PID/root) cannot show that across mount namespaces.
            try:
                other_ns = os.readlink(f"/proc/{d}/ns/mnt") != own_mntns
            except OSError:
                other_ns = False
            if other_ns:
                root = _root_mount(d)
                ours = base in root
        if ours:
            desc = f"pid {d} [{state}] {cmd[:300]!r}" + (f" root mount: {root}" if root else "")
            found.append((int(d), desc))
    return found


def _root_mount(pid: str) -> str:
    """The mountinfo line of ``pid``'s root (the last mount on "/")."""
    root = ""
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and fields[4] == "/":
                    root = line.strip()
    except OSError:
        return ""
    return root


def _cgroup_leaks(ids: set[str]) -> list[str]:
    out = []
    try:
        ctrls = [c for c in os.listdir("/sys/fs/cgroup") if c != "unified"]
    except OSError:
        return out
    for ctrl in ctrls:
        for i in ids:
            p = f"/sys/fs/cgroup/{ctrl}/libpod_parent/libpod-{i}"
            if os.path.isdir(p):
                out.append(f"cgroup dir left: {p}")
    return out


def _state_leaks(env: PodmanEnv, ids: set[str]) -> list[str]:
    out = []
    if env.rootless:
        for rt in ("pyoci", "runc"):
            d = os.path.join(env.xdg, rt)
            try:
                names = [n for n in os.listdir(d) if not n.startswith(".")]
            except OSError:
                continue
            out += [f"runtime state left: {d}/{n}" for n in names]
    else:
        for d in ("/run/pyoci", "/run/runc"):
            out += [f"runtime state left: {d}/{i}" for i in ids if os.path.lexists(os.path.join(d, i))]
    return out


def _problems(env: PodmanEnv, ids: set[str]) -> list[str]:
    problems = []
    left = env.run("ps", "-a", "--format", "{{.ID}} {{.Status}} {{.Names}}").stdout.strip()
    if left:
        problems += [f"container left: {line}" for line in left.splitlines()]
    problems += _state_leaks(env, ids)
    if not env.rootless:
        problems += _cgroup_leaks(ids)
    problems += [f"mount left: {m}" for m in mounts_under(env.base)]
    pause = env.pause_pid()
    if pause:
        problems += [f"mount left in podman's userns: {m}" for m in mounts_under(env.base, str(pause))]
    problems += [desc for _, desc in _our_processes(env, ids)]
    return problems


def _wait_clean(env: PodmanEnv, ids: set[str]) -> list[str]:
    deadline = time.monotonic() + CLEANUP_WAIT
    while True:
        problems = _problems(env, ids)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.2)


def _force_clean(env: PodmanEnv, ids: set[str]) -> None:
    """Best effort, so that one leaking test does not fail the next ones."""
    env.run("rm", "-a", "-f", "-t", "0", timeout=120)
    for pid, _ in _our_processes(env, ids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for line in reversed(mounts_under(env.base)):
        subprocess.run(["umount", "-l", line.split()[4]], capture_output=True)
    for i in ids:
        for rt, d in ((PYOCI, "/run/pyoci"), (RUNC, "/run/runc")):
            if rt and os.path.lexists(os.path.join(d, i)):
                subprocess.run([rt, "delete", "--force", i], capture_output=True, timeout=30)
