"""Run the real Podman against pyoci (or runc) in throw-away, isolated storage.

Podman 4.3 + conmon, as root or as an unprivileged user, with everything
(storage, run root, tmpdir, events log, XDG_RUNTIME_DIR, HOME,
containers.conf) under one directory, so the machine's own Podman storage is
never touched.  Used by tests/e2e; also handy to reproduce a failure by hand::

    python -m tools.podman setup /tmp/pod [--user NAME]
    python -m tools.podman cmd   /tmp/pod [--user NAME] -- run --rm \\
        --runtime /work/main/.venv/bin/pyoci localhost/pyoci-busybox echo hi
    python -m tools.podman env   /tmp/pod [--user NAME]   # the argv prefix, for a shell

``setup`` creates the layout, writes containers.conf and imports a busybox
image as ``localhost/pyoci-busybox`` (IMAGE).  ``cmd`` runs podman there.

containers.conf written here (podman 4.3 keys, containers.conf(5)):

* ``[engine.runtimes] pyoci = [<launcher>]`` and ``runtime_supports_json =
  ["pyoci", "runc", "crun"]``: without the latter podman passes
  ``--log-format=json --log FILE`` only to runtimes named runc/crun/...;
* ``[containers] default_ulimits`` nofile/nproc 1024 for root (Podman's root
  defaults, 1048576/4194304, exceed this machine's hard limits);
* ``default_capabilities``, ``default_sysctls``: copied from Debian's
  /usr/share/containers/containers.conf, which CONTAINERS_CONF replaces;
* ``netns = "none"`` (/dev/net/tun is 0600 here, slirp4netns cannot work;
  tests still pass ``--network=none`` explicitly);
* ``cgroup_manager = "cgroupfs"`` (no systemd), ``events_logger = "file"``.

Storage is vfs, given by global flags (``--root --runroot --storage-driver
--tmpdir``), which podman also hands to conmon's exit command.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import pwd
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import termios
import time
from dataclasses import dataclass, field

IMAGE = "localhost/pyoci-busybox"
PODMAN = shutil.which("podman") or "/usr/bin/podman"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pyoci_launcher() -> str:
    """The pyoci launcher of the venv this interpreter belongs to."""
    cand = os.path.join(os.path.dirname(sys.executable), "pyoci")
    if os.path.exists(cand):
        return cand
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(here, ".venv", "bin", "pyoci")


def runc_path() -> str | None:
    for p in (shutil.which("runc"), "/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"):
        if p and os.access(p, os.X_OK):
            return p
    return None


# Debian's /usr/share/containers/containers.conf, which CONTAINERS_CONF hides
# (podman's compiled-in defaults add NET_RAW, MKNOD and AUDIT_WRITE).
DISTRO_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETFCAP", "SETGID",
               "SETPCAP", "SETUID", "SYS_CHROOT")


def containers_conf(*, rootless: bool, pyoci: str, events_file: str) -> str:
    caps = ", ".join(f'"{c}"' for c in DISTRO_CAPS)
    lines = ["[containers]", f"default_capabilities = [{caps}]",
             'default_sysctls = ["net.ipv4.ping_group_range=0 0"]', 'netns = "none"']
    if not rootless:
        lines.append('default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]')
    lines += [
        "",
        "[engine]",
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        f'events_logfile_path = "{events_file}"',
        'runtime_supports_json = ["pyoci", "runc", "crun"]',
        "",
        "[engine.runtimes]",
        f'pyoci = ["{pyoci}"]',
        "",
    ]
    return "\n".join(lines)


def busybox_tar(dest: str) -> str:
    """A tarball of a busybox rootfs (all files owned by 0:0) at ``dest``."""
    from tools.busybox import populate_rootfs

    with tempfile.TemporaryDirectory(prefix="pyoci-bb-") as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        populate_rootfs(rootfs)
        for d in ("mnt", "run", "var", "var/tmp", "home"):
            os.makedirs(os.path.join(rootfs, d), mode=0o755, exist_ok=True)
        os.chmod(os.path.join(rootfs, "var", "tmp"), 0o1777)

        def owner(ti: tarfile.TarInfo) -> tarfile.TarInfo:
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            return ti

        with tarfile.open(dest, "w") as tar:
            for name in sorted(os.listdir(rootfs)):
                tar.add(os.path.join(rootfs, name), arcname=name, filter=owner)
    os.chmod(dest, 0o644)
    return dest


@dataclass
class PodmanEnv:
    """Podman confined to ``base``: as root (user None) or as ``user``."""

    base: str
    user: str | None = None
    pyoci: str = field(default_factory=pyoci_launcher)

    def __post_init__(self) -> None:
        self.base = os.path.abspath(self.base)
        if self.user is None:
            self.uid = self.gid = 0
        else:
            pw = pwd.getpwnam(self.user)
            self.uid, self.gid = pw.pw_uid, pw.pw_gid

    # -- layout ---------------------------------------------------------------------

    @property
    def rootless(self) -> bool:
        return self.user is not None

    def path(self, *parts: str) -> str:
        return os.path.join(self.base, *parts)

    @property
    def conf(self) -> str:
        return self.path("containers.conf")

    @property
    def storage_root(self) -> str:
        return self.path("storage")

    @property
    def runroot(self) -> str:
        return self.path("runroot")

    @property
    def tmpdir(self) -> str:
        return self.path("tmp")

    @property
    def xdg(self) -> str:
        """XDG_RUNTIME_DIR of a rootless podman (runtimes keep state in it)."""
        return self.path("xdg")

    @property
    def home(self) -> str:
        return self.path("home")

    @property
    def events_file(self) -> str:
        return self.path("tmp", "events", "events.log")

    def pause_pid(self) -> int | None:
        """The rootless pause process (holder of podman's user+mount ns)."""
        try:
            with open(os.path.join(self.tmpdir, "pause.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if os.path.exists(f"/proc/{pid}") else None

    def setup(self, image_tar: str | None = None) -> None:
        """Create the layout and conf, import IMAGE (from ``image_tar`` or a
        fresh busybox tarball).  ``base``'s parent must be traversable by
        ``user``."""
        os.makedirs(self.base, exist_ok=True)
        os.chmod(self.base, 0o755 if self.rootless else 0o700)
        with open(self.conf, "w") as f:
            f.write(containers_conf(rootless=self.rootless, pyoci=self.pyoci, events_file=self.events_file))
        os.chmod(self.conf, 0o644)
        for d in (self.xdg, self.home, self.tmpdir):
            os.makedirs(d, mode=0o700, exist_ok=True)
            os.chown(d, self.uid, self.gid)
        own_tar = image_tar is None
        tar = image_tar or busybox_tar(self.path("busybox.tar"))
        try:
            r = self.run("import", tar, IMAGE, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"podman import failed ({r.returncode}): {r.stderr.strip()}")
        finally:
            if own_tar:
                os.unlink(tar)

    # -- running podman -------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {"PATH": BASE_PATH, "CONTAINERS_CONF": self.conf, "LANG": "C.UTF-8"}
        if self.rootless:
            env.update(HOME=self.home, XDG_RUNTIME_DIR=self.xdg, USER=self.user or "",
                       LOGNAME=self.user or "")
        else:
            env.update(HOME="/root")
        return env

    def argv(self, *args: str) -> list[str]:
        """The full command line: ``[runuser -u USER -- env -i ...] podman
        <storage flags> ARGS``."""
        podman = [PODMAN, "--root", self.storage_root, "--runroot", self.runroot,
                  "--tmpdir", self.tmpdir, "--storage-driver", "vfs", *args]
        if not self.rootless:
            return podman
        envs = [f"{k}={v}" for k, v in self.env().items()]
        return ["runuser", "-u", self.user or "", "--", "env", "-i", *envs, *podman]

    def run(self, *args: str, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), input=input, capture_output=True, text=True,
                              timeout=timeout, env=self.env(), cwd="/",
                              stdin=None if input is not None else subprocess.DEVNULL)

    def run_pty(self, *args: str, steps: list[tuple[str, str]] | None = None, timeout: float = 30,
                size: tuple[int, int] = (24, 80)) -> tuple[int, str]:
        """Run podman with a pty as its controlling terminal and stdio.
        ``steps`` are (regex, text): wait until the output so far matches
        regex, then type text.  Returns (exit status, all output)."""
        return run_in_pty(self.argv(*args), self.env(), steps=list(steps or []), timeout=timeout, size=size)


class PtyTimeout(AssertionError):
    pass


def run_in_pty(argv: list[str], env: dict[str, str], *, steps: list[tuple[str, str]],
               timeout: float = 30, size: tuple[int, int] = (24, 80)) -> tuple[int, str]:
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))

    def ctty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd="/",
                            start_new_session=True, preexec_fn=ctty, close_fds=True)
    os.close(slave)
    buf = b""
    deadline = time.monotonic() + timeout
    pending = list(steps)
    pos = 0  # a step's regex is matched against output after the previous step's match
    try:
        while True:
            if pending:
                m = re.search(pending[0][0], buf.decode(errors="replace")[pos:])
                if m:
                    pos += m.end()
                    os.write(master, pending.pop(0)[1].encode())
                    continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise PtyTimeout(f"timeout; waiting for {pending[0][0] if pending else 'exit'!r}; "
                                 f"output so far: {buf.decode(errors='replace')!r}")
            r, _, _ = select.select([master], [], [], min(left, 0.5))
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    finally:
        os.close(master)
    return rc, buf.decode(errors="replace")


# -- command line -------------------------------------------------------------------

USAGE = ("usage: python -m tools.podman setup|env|cmd DIR [--user NAME] [-- PODMAN-ARGS...]\n"
         "  setup: create DIR (conf + storage), import " + IMAGE + "\n"
         "  env:   print the podman command prefix for DIR\n"
         "  cmd:   run podman in DIR with PODMAN-ARGS")


def main(argv: list[str]) -> int:
    rest: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    user = None
    if "--user" in argv:
        i = argv.index("--user")
        user = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) != 2 or argv[0] not in ("setup", "env", "cmd"):
        print(USAGE, file=sys.stderr)
        return 2
    action, base = argv
    env = PodmanEnv(base, user)
    if action == "setup":
        env.setup()
        print(" ".join(env.argv()))
        return 0
    if action == "env":
        prefix = " ".join(env.argv())
        print(prefix if env.rootless else f"CONTAINERS_CONF={env.conf} {prefix}")
        return 0
    return subprocess.call(env.argv(*rest), env=env.env(), cwd="/")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
