"""Helpers of the attack suite: one face for root and rootless runs, the
naive (unprotected) demonstrations' namespaces, and the checks of the host.

Everything a test creates lives under its private directory (``oci.tmp``,
made by ocitest.Env); the naive demonstrations run in namespaces of their own
(``unshare``), so a mount they make dies with them even if a test fails
half-way.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from helpers.ocitest import BASE_PATH, PYOCI, PYTHON, Bundle, Env, HostUser, Result

# -- the host's side --------------------------------------------------------------


def host_binaries() -> dict[tuple[int, int], str]:
    """(st_dev, st_ino) -> path of every executable a pyoci process runs as
    on the host: the interpreter behind .venv/bin/python and the caller's."""
    found: dict[tuple[int, int], str] = {}
    for p in (PYTHON, sys.executable, "/usr/bin/python3", PYOCI):
        real = os.path.realpath(p)
        try:
            with open(real, "rb") as f:
                head = f.read(4)
        except OSError:
            continue
        if head == b"\x7fELF":
            st = os.stat(real)
            found[(st.st_dev, st.st_ino)] = real
    return found


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


FOUND = re.compile(r"^FOUND pid=(\d+) dev=(\d+):(\d+) ino=(\d+) exe=(.*)$")


def found_host_binaries(out: str) -> list[str]:
    """The probe's FOUND lines (see probe.c) that name a host binary."""
    host = host_binaries()
    bad = []
    for line in out.splitlines():
        m = FOUND.match(line)
        if m and (os.makedev(int(m[2]), int(m[3])), int(m[4])) in host:
            bad.append(line)
    return bad


def mount_points(mountinfo: str) -> Counter[str]:
    return Counter(line.split()[4] for line in mountinfo.splitlines() if len(line.split()) > 4)


def mounts_outside(container: str, host: str, rootfs: Path, mine: Path) -> list[str]:
    """Mounts the container's mount namespace has more of than the host's,
    outside the rootfs, on or from something under `mine` (the test's
    directory; other users of the machine mount and unmount elsewhere
    meanwhile): a mount that escaped.  Both mountinfo texts are read before
    pivot_root, when both show host paths."""
    root, ours = str(rootfs), str(mine)
    theirs, host_points = mount_points(container), mount_points(host)
    bad = []
    for line in container.splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        src_root, point = f[3], f[4]
        if theirs[point] <= host_points.get(point, 0) or point == root or point.startswith(root + "/"):
            continue
        if point.startswith(ours) or src_root.startswith(ours):
            bad.append(line)
    return bad


def host_mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    p = str(path)
    return [ln for ln in lines if ln.split()[4] == p or ln.split()[4].startswith(p + "/")]


def install(probe: Path, rootfs: Path, name: str = "probe") -> str:
    """Copy the probe (conftest.py's fixture) into a rootfs; returns its path there."""
    dst = rootfs / "bin" / name
    shutil.copy2(probe, dst)
    os.chmod(dst, 0o755)
    return f"/bin/{name}"


# -- root or rootless ------------------------------------------------------------------


class Side:
    """Run pyoci as root or as the rootless test user with one interface.

    ``rl`` is test_rootless.Rootless for the rootless side, None for root."""

    def __init__(self, oci: Env, rl: Any = None) -> None:
        self.oci = oci
        self.rl = rl
        self.rootless = rl is not None
        self.user: HostUser | None = rl.user if rl is not None else None
        self.root = rl.root if rl is not None else oci.root
        self._calls = 0

    def bundle(self, args: list[str], name: str | None = None) -> Bundle:
        if self.rl is not None:
            b: Bundle = self.rl.bundle(args, name)
            return b
        return self.oci.bundle(args, name=name)

    def save(self, b: Bundle) -> Bundle:
        if self.rl is not None:
            self.rl.save(b)
        else:
            b.save()
        return b

    def workdir(self, name: str) -> Path:
        """A directory of the side's user (0755) under the test's directory."""
        if self.rl is not None:
            d: Path = self.rl.outdir(name)
            return d
        return self.oci.mkdir(name)

    def chown(self, path: Path) -> None:
        if self.user is not None:
            os.lchown(path, self.user.uid, self.user.gid)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(extra or {})
        if self.rl is not None:
            env.setdefault("XDG_RUNTIME_DIR", str(self.rl.xdg))
        return env

    def pyoci(self, *args: str, **kw: Any) -> Result:
        kw["env"] = self.env(kw.get("env"))
        return self.oci.pyoci(*args, root=self.root, user=self.user, **kw)

    def pyoci_with_fds(self, *args: str, fds: dict[int, Path], env: dict[str, str] | None = None,
                       stdout: Path | None = None, timeout: float = 60) -> Result:
        """Like pyoci(), with extra fds open in the caller: fds[N] is a file or
        directory opened read-only as fd N (an engine that leaks them, or
        passes them on purpose with --preserve-fds)."""
        cmd, full_env = self.oci.command(args, root=self.root, user=self.user, env=self.env(env))
        redirs = " ".join(f'{n}<"$FD{n}"' for n in sorted(fds))
        wrapper = ["bash", "-c", f'exec {redirs}; exec "$@"', "bash", *cmd]
        outer = full_env if self.user is None else {"PATH": BASE_PATH}
        outer = {**outer, **{f"FD{n}": str(p) for n, p in fds.items()}}
        self._calls += 1
        n = self._calls
        out, err = stdout or self.oci.tmp / f".fds-out.{n}", self.oci.tmp / f".fds-err.{n}"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            p = subprocess.run(wrapper, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=outer,
                               timeout=timeout, close_fds=True)
        return Result(wrapper, p.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"))

    # -- the unprotected path -------------------------------------------------
    def naive(self, script: str, *, pid: bool = True, mount_proc: str | None = "/proc",
              env: dict[str, str] | None = None, fds: dict[int, Path] | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a shell script the way a runtime without the defence would set
        up a container: new mount (and pid) namespaces, as root or, rootless,
        as the test user mapped to root in a new user namespace.  Nothing of
        pyoci runs.  fds[N] is opened as fd N first and inherited."""
        uns = ["unshare", "--mount", "--propagation", "private"]
        if self.user is not None:
            uns += ["--user", "--map-root-user"]
        if pid:
            uns += ["--pid", "--fork"]
            if mount_proc:
                uns.append(f"--mount-proc={mount_proc}")
        variables = dict(env or {})
        if fds:
            variables.update({f"FD{n}": str(p) for n, p in fds.items()})
            script = "exec " + " ".join(f'{n}<"$FD{n}"' for n in sorted(fds)) + "\n" + script
        if self.user is None:
            cmd = [*uns, "bash", "-c", script]
            run_env = {"PATH": BASE_PATH, **variables}
        else:
            # runuser keeps the caller's environment: give the script exactly these variables
            cmd = ["runuser", "-u", self.user.name, "--", "env", "-i", f"PATH={BASE_PATH}",
                   *[f"{k}={v}" for k, v in variables.items()], *uns, "bash", "-c", script]
            run_env = {"PATH": BASE_PATH}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=run_env,
                              stdin=subprocess.DEVNULL)


def refused(r: Result) -> bool:
    """pyoci failed the way it should refuse an attack: a non-zero status and
    one error line naming the problem (an internal error is a crash, not a
    refusal)."""
    lines = r.stderr.splitlines()
    return (r.rc != 0 and len(lines) == 1 and lines[0].startswith("pyoci: ")
            and "internal error" not in lines[0])


def describe(p: subprocess.CompletedProcess[str]) -> str:
    return f"$ {shlex.join(p.args)}\n  rc={p.returncode}\n  stdout={p.stdout!r}\n  stderr={p.stderr!r}"


# -- observing the container's mounts before pivot_root ----------------------------------


def mountinfo_hook(side: Side, name: str = "mi") -> tuple[dict[str, Any], Path]:
    """A createRuntime hook that saves, for each container, the mountinfo of
    its init (still rooted at the host's /, before pivot_root) and the host's
    at the same instant: DIR/container.PID and DIR/host.PID."""
    out = side.workdir(name)
    script = ("pid=$(tr -d ' \\n' | sed -n 's/.*\"pid\":\\([0-9][0-9]*\\).*/\\1/p')\n"
              f'cat /proc/$pid/mountinfo > "{out}/container.$pid"\n'
              f'cat /proc/self/mountinfo > "{out}/host.$pid"\n')
    return side.oci.hook(script), out


def hook_mountinfo(out: Path, pid: int) -> tuple[str, str]:
    c, h = out / f"container.{pid}", out / f"host.{pid}"
    assert c.exists() and h.exists(), f"the createRuntime hook left no mountinfo for pid {pid} in {out}"
    return c.read_text(), h.read_text()


# -- racing the runtime -------------------------------------------------------------------

SWAPPER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, seconds = sys.argv[1].encode(), sys.argv[2].encode(), float(sys.argv[3])
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    # renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    libc.syscall(316, -100, a, -100, b, 2)
    n += 1
print(n)
"""


def start_swapper(a: Path, b: Path, seconds: float) -> subprocess.Popen[str]:
    """Exchange a and b (a directory and a symlink, say) as fast as possible
    for some seconds: the attacker's half of a symlink-exchange race."""
    return subprocess.Popen([PYTHON, "-c", SWAPPER, str(a), str(b), str(seconds)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        p.kill()
    p.communicate(timeout=10)


def wait_gone(pid: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
