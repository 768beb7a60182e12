"""Helpers for pyoci's integration tests: bundles, running the CLI, leak checks.

Everything here drives the real kernel: bundles are real directories with a
static busybox, pyoci runs as a subprocess (``.venv/bin/pyoci --root DIR``),
and the leak check reads /proc and lists the cgroup hierarchies (a test's
containers leave no cgroup directory: find_cgroup_leaks).

Leak detection.  Other pyoci users may run on the same machine at the same
time, so "a process named pyoci" is not enough to call something ours.  A
process belongs to the current test when any of these holds:

* its command line mentions the test's private directory (the pyoci CLI runs
  with ``--root <tmp>/state`` and ``--bundle <tmp>/...``; hook scripts live there);
* its environment holds the test's token (``PYOCI_TEST_TOKEN=<token>``): every
  pyoci call gets it, and every hook in a test config gets it in its env
  (the container's stage1/stage2, pyoci-init, start with an empty one);
* its root directory is one of the test's rootfs directories (the container's
  processes after pivot_root);
* its cgroup names one of the test's containers (ids hold the token), as the
  container's init does from SYNC 2 on.
"""

from __future__ import annotations

import array
import copy
import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PYOCI = str(REPO / ".venv" / "bin" / "pyoci")
PYTHON = str(REPO / ".venv" / "bin" / "python")
BUSYBOX = "/bin/busybox"
TOKEN_VAR = "PYOCI_TEST_TOKEN"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_applets: list[str] | None = None


def busybox_applets() -> list[str]:
    global _applets
    if _applets is None:
        out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout
        _applets = [a for a in out.split() if a and a != "busybox"]
    return _applets


def populate_rootfs(rootfs: Path) -> None:
    """A minimal root: /bin/busybox (a copy of busybox-static) + applet links."""
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    os.chmod(rootfs / "bin" / "busybox", 0o755)
    for a in busybox_applets():
        link = rootfs / "bin" / a
        if not link.exists() and not link.is_symlink():
            os.symlink("busybox", link)
    for d in ("proc", "sys", "dev", "tmp", "etc", "mnt", "root"):
        (rootfs / d).mkdir(exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)


def default_config(args: list[str], *, rootless: bool = False, uid: int = 0, gid: int = 0) -> dict[str, Any]:
    from pyoci.cli.spec import default_spec

    return default_spec(rootless, uid, gid, list(args), terminal=False)


@dataclass
class Bundle:
    path: Path
    config: dict[str, Any]

    @property
    def rootfs(self) -> Path:
        return self.path / (self.config.get("root") or {}).get("path", "rootfs")

    @property
    def process(self) -> dict[str, Any]:
        return self.config["process"]

    @property
    def linux(self) -> dict[str, Any]:
        return self.config.setdefault("linux", {})

    def save(self) -> Bundle:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))
        return self

    def set_args(self, *args: str) -> Bundle:
        self.process["args"] = list(args)
        return self

    def sh(self, script: str) -> Bundle:
        return self.set_args("sh", "-c", script)

    def add_mount(self, destination: str, mtype: str | None, source: str | None,
                  options: list[str] | None = None) -> Bundle:
        m: dict[str, Any] = {"destination": destination}
        if mtype is not None:
            m["type"] = mtype
        if source is not None:
            m["source"] = source
        if options is not None:
            m["options"] = options
        self.config.setdefault("mounts", []).append(m)
        return self

    def bind(self, source: str | Path, destination: str, *extra: str) -> Bundle:
        return self.add_mount(destination, "bind", str(source), ["rbind", *extra])

    def namespaces(self) -> list[dict[str, Any]]:
        return self.linux.setdefault("namespaces", [])

    def drop_namespace(self, ns_type: str) -> Bundle:
        self.linux["namespaces"] = [n for n in self.namespaces() if n["type"] != ns_type]
        return self

    def set_namespace(self, ns_type: str, path: str | None = None) -> Bundle:
        self.drop_namespace(ns_type)
        entry: dict[str, Any] = {"type": ns_type}
        if path:
            entry["path"] = path
        self.namespaces().append(entry)
        return self

    def chown_all(self, uid: int, gid: int) -> None:
        for dirpath, dirnames, filenames in os.walk(self.path):
            os.lchown(dirpath, uid, gid)
            for n in dirnames + filenames:
                os.lchown(os.path.join(dirpath, n), uid, gid)


def _shared_make_bundle() -> Callable[..., Any] | None:
    """tools.busybox.make_bundle (the project's bundle builder)."""
    try:
        from tools.busybox import make_bundle
    except ImportError:
        return None
    return make_bundle  # type: ignore[no-any-return]


def make_bundle(path: Path, args: list[str] | None = None, *, rootless: bool = False,
                uid: int = 0, gid: int = 0) -> Bundle:
    """A busybox bundle; for rootless=True the config maps uid/gid (not the
    caller's: the tests build bundles as root for another user)."""
    args = list(args or ["true"])
    shared = _shared_make_bundle()
    if shared is not None:
        shared(str(path), args, rootless=False, terminal=False)
    else:
        path.mkdir(parents=True, exist_ok=True)
        populate_rootfs(path / "rootfs")
    (path / "rootfs" / "mnt").mkdir(exist_ok=True)
    b = Bundle(path, default_config(args, rootless=rootless, uid=uid, gid=gid))
    return b.save()


@dataclass
class Result:
    args: list[str]
    rc: int
    stdout: str
    stderr: str
    duration: float = 0.0

    @property
    def err_lines(self) -> list[str]:
        return self.stderr.splitlines()

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (f"$ {' '.join(self.args)}\n  rc={self.rc}\n  stdout={self.stdout!r}\n"
                f"  stderr={self.stderr!r}")

    def ok(self) -> Result:
        assert self.rc == 0, f"command failed:\n{self}"
        return self

    def fails(self) -> Result:
        assert self.rc != 0, f"command unexpectedly succeeded:\n{self}"
        return self


@dataclass
class HostUser:
    name: str
    uid: int
    gid: int
    home: str


class Env:
    """Per-test context: a private directory, a state root, a token."""

    def __init__(self, name: str) -> None:
        safe = "".join(c if c.isalnum() else "-" for c in name)[:40].strip("-")
        self.tmp = Path(tempfile.mkdtemp(prefix=f"pyoci-it-{safe}-", dir="/tmp"))
        os.chmod(self.tmp, 0o755)
        self.root = self.tmp / "state"
        self.token = uuid.uuid4().hex
        self.roots: list[Path] = [self.root]
        self.rootfs_dirs: list[Path] = []
        self._n = 0
        self.bundles: list[Bundle] = []
        self.netns: list[str] = []

    # -- names ------------------------------------------------------------
    def cid(self, stem: str = "c") -> str:
        self._n += 1
        return f"{stem}-{self.token[:8]}-{self._n}"

    def path(self, *parts: str) -> Path:
        return self.tmp.joinpath(*parts)

    def mkdir(self, name: str, mode: int = 0o755) -> Path:
        p = self.tmp / name
        p.mkdir(parents=True, exist_ok=True)
        os.chmod(p, mode)
        return p

    # -- bundles ----------------------------------------------------------
    def bundle(self, args: list[str] | None = None, name: str | None = None, *,
               rootless: bool = False, uid: int = 0, gid: int = 0) -> Bundle:
        name = name or f"bundle{len(self.bundles) + 1}"
        b = make_bundle(self.tmp / name, args, rootless=rootless, uid=uid, gid=gid)
        self.bundles.append(b)
        self.rootfs_dirs.append(b.rootfs)
        return b

    def hook(self, script: str, name: str | None = None, *, args: list[str] | None = None,
             timeout: int | None = None, env: list[str] | None = None) -> dict[str, Any]:
        """Write an executable hook script under the test dir; return its hooks[] entry."""
        name = name or f"hook{uuid.uuid4().hex[:6]}.sh"
        p = self.tmp / "hooks" / name
        p.parent.mkdir(exist_ok=True)
        p.write_text("#!/bin/sh\n" + script + "\n")
        os.chmod(p, 0o755)
        h: dict[str, Any] = {"path": str(p), "args": [str(p), *(args or [])],
                             "env": [f"PATH={BASE_PATH}", f"{TOKEN_VAR}={self.token}", *(env or [])]}
        if timeout is not None:
            h["timeout"] = timeout
        return h

    # -- running pyoci ----------------------------------------------------
    def base_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": BASE_PATH, "HOME": "/root", "LANG": "C.UTF-8", TOKEN_VAR: self.token}
        if extra:
            env.update(extra)
        return env

    def command(self, args: Iterable[str], *, root: Path | str | None = None,
                log: Path | str | None = None, log_format: str | None = None,
                user: HostUser | None = None, env: dict[str, str] | None = None) -> tuple[list[str],
                                                                                          dict[str, str]]:
        cmd = [PYOCI, "--root", str(root or self.root)]
        if log is not None:
            cmd += ["--log", str(log)]
        if log_format is not None:
            cmd += ["--log-format", log_format]
        cmd += list(args)
        full_env = self.base_env(env)
        if user is not None:
            full_env["HOME"] = user.home
            full_env.setdefault("XDG_RUNTIME_DIR", str(self.tmp / "xdg"))
            pairs = [f"{k}={v}" for k, v in full_env.items()]
            cmd = ["runuser", "-u", user.name, "--", "env", "-i", *pairs, *cmd]
        return cmd, full_env

    def pyoci(self, *args: str, root: Path | str | None = None, log: Path | str | None = None,
              log_format: str | None = None, user: HostUser | None = None,
              env: dict[str, str] | None = None, stdin: str | bytes | None = None,
              stdout: Path | None = None, stderr: Path | None = None, timeout: float = 60,
              cwd: str | Path | None = None) -> Result:
        """Run the CLI; stdio goes to files (never pipes: a container started
        by `create` inherits them and would keep a pipe open)."""
        cmd, full_env = self.command(args, root=root, log=log, log_format=log_format, user=user, env=env)
        self._n += 1
        out_path = stdout or self.tmp / f".out.{self._n}"
        err_path = stderr or self.tmp / f".err.{self._n}"
        in_path = None
        if stdin is not None:
            in_path = self.tmp / f".in.{self._n}"
            in_path.write_bytes(stdin.encode() if isinstance(stdin, str) else stdin)
        t0 = time.monotonic()
        with open(out_path, "wb") as fo, open(err_path, "wb") as fe, \
                open(in_path or os.devnull, "rb") as fi:
            p = subprocess.run(cmd, stdin=fi, stdout=fo, stderr=fe,
                               env=full_env if user is None else {"PATH": BASE_PATH},
                               timeout=timeout, cwd=cwd, close_fds=True)
        dt = time.monotonic() - t0
        out = out_path.read_text(errors="replace")
        err = err_path.read_text(errors="replace")
        return Result(cmd, p.returncode, out, err, dt)

    def popen(self, *args: str, stdout: Path | None = None, stderr: Path | None = None,
              user: HostUser | None = None, env: dict[str, str] | None = None,
              root: Path | str | None = None) -> subprocess.Popen[bytes]:
        cmd, full_env = self.command(args, root=root, user=user, env=env)
        self._n += 1
        fo = open(stdout or self.tmp / f".out.{self._n}", "wb")
        fe = open(stderr or self.tmp / f".err.{self._n}", "wb")
        try:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                    env=full_env if user is None else {"PATH": BASE_PATH}, close_fds=True)
        finally:
            fo.close()
            fe.close()

    # -- convenience --------------------------------------------------------
    def run(self, bundle: Bundle, cid: str | None = None, *extra: str, **kw: Any) -> Result:
        bundle.save()
        return self.pyoci("run", "--bundle", str(bundle.path), *extra, cid or self.cid(), **kw)

    def state(self, cid: str, **kw: Any) -> dict[str, Any]:
        r = self.pyoci("state", cid, **kw).ok()
        st: dict[str, Any] = r.json()
        return st

    def wait_status(self, cid: str, status: str, timeout: float = 10, **kw: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        last = None
        while time.monotonic() < deadline:
            last = self.pyoci("state", cid, **kw)
            if last.rc == 0:
                st = last.json()
                if st["status"] == status:
                    return st
            time.sleep(0.05)
        if last is not None and last.rc != 0:
            raise AssertionError(f"container {cid} did not reach {status!r}:\n{last}")
        raise AssertionError(f"container {cid} did not reach {status!r}; last state {st}")


# -- leak checks ---------------------------------------------------------------


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _proc_state(pid: int) -> str:
    data = _read(f"/proc/{pid}/stat").decode(errors="replace")
    if ")" not in data:
        return "?"
    return data[data.rindex(")") + 2:].split(" ", 1)[0]


def _root_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def find_process_leaks(env: Env) -> list[tuple[int, str]]:
    tmp = str(env.tmp).encode()
    token = f"{TOKEN_VAR}={env.token}".encode()
    cgroup_mark = f"-{env.token[:8]}-".encode()     # container ids: <stem>-<token[:8]>-<n>
    roots = {k for k in (_root_key(p) for p in env.rootfs_dirs) if k is not None}
    me = os.getpid()
    found: list[tuple[int, str]] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == me:
            continue
        st = _proc_state(pid)
        if st in ("Z", "X", "x", "?"):
            continue
        cmdline = _read(f"/proc/{pid}/cmdline")
        comm = _read(f"/proc/{pid}/comm").decode(errors="replace").strip()
        why = None
        if tmp in cmdline:
            why = "command line mentions the test dir"
        elif token in _read(f"/proc/{pid}/environ"):
            why = "carries the test's token in its environment"
        else:
            key = _root_key(Path(f"/proc/{pid}/root"))
            if key is not None and key in roots:
                why = "its root is the test's rootfs"
            elif cgroup_mark in _read(f"/proc/{pid}/cgroup"):
                why = "is in a cgroup of one of the test's containers"
        if why:
            shown = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append((pid, f"pid {pid} comm={comm!r} cmdline={shown!r}: {why}"))
    return found


def find_mount_leaks(env: Env) -> list[str]:
    tmp = str(env.tmp)
    lines = _read("/proc/self/mountinfo").decode(errors="replace").splitlines()
    return [ln for ln in lines if tmp in ln]


def find_state_leaks(env: Env) -> list[str]:
    left = []
    for root in env.roots:
        try:
            names = os.listdir(root)
        except FileNotFoundError:
            continue
        left += [str(Path(root) / n) for n in names]
    return left


def _cgroup_mounts() -> list[str]:
    """The mount points of the cgroup hierarchies (v1 and cgroup2)."""
    out = []
    for line in _read("/proc/self/mountinfo").decode(errors="replace").splitlines():
        parts = line.split()
        if "-" in parts[6:] and parts[parts.index("-", 6) + 1] in ("cgroup", "cgroup2"):
            out.append(parts[4])
    return out


def _own_cgroup_paths() -> set[str]:
    """This process's cgroup in each hierarchy ("/..." paths; pyoci runs in it)."""
    lines = _read("/proc/self/cgroup").decode().splitlines()
    return {ln.split(":", 2)[2] for ln in lines if ln.count(":") >= 2}


def find_cgroup_leaks(env: Env) -> list[str]:
    """Cgroup directories of the test's containers still there: in every
    hierarchy, an entry whose name holds the test's token (container ids,
    and the cgroupsPath names tests build from it) where pyoci makes
    cgroups (the hierarchy's root for an absolute cgroupsPath, the caller's
    own cgroup or, on cgroup v2, its parent for a relative one), and the
    cgroup a bundle's cgroupsPath names.  A few directory listings per
    hierarchy, not a walk: under 1 ms on this project's machines."""
    mark = env.token[:8]
    own = _own_cgroup_paths()
    rel_bases = {"/"} | own | {os.path.dirname(p.rstrip("/")) or "/" for p in own}
    wanted: list[str] = []
    for b in env.bundles:
        # The config as the test built it (b.config), never config.json: a
        # hostile-input test makes that /dev/zero, a fifo or a 1 GiB file.
        linux = b.config.get("linux")
        cp = linux.get("cgroupsPath") if isinstance(linux, dict) else None
        if isinstance(cp, str) and cp and ":" not in cp and ".." not in cp.split("/"):
            wanted += [cp] if cp.startswith("/") else [os.path.join(base, cp) for base in rel_bases]
    left: list[str] = []
    for mount in _cgroup_mounts():
        for base in rel_bases:
            d = os.path.normpath(mount + "/" + base)
            try:
                names = os.listdir(d)
            except OSError:
                continue
            left += [os.path.join(d, n) for n in names if mark in n and os.path.isdir(os.path.join(d, n))]
        mine = [os.path.normpath(mount + "/" + p) for p in own]
        for cp in wanted:
            d = os.path.normpath(mount + "/" + cp)
            if d == mount or any(o == d or o.startswith(d + "/") for o in mine):
                continue    # the runner's own cgroup or one above it ("."): there before the test
            if os.path.isdir(d):
                left.append(d)
    return sorted(set(left))


def check_leaks(env: Env, wait: float = 3.0) -> list[str]:
    """Wait up to `wait` seconds for everything to be gone; return what is left."""
    deadline = time.monotonic() + wait
    while True:
        problems = [d for _, d in find_process_leaks(env)]
        problems += [f"mount: {m}" for m in find_mount_leaks(env)]
        problems += [f"state dir entry left: {s}" for s in find_state_leaks(env)]
        problems += [f"cgroup left: {d}" for d in find_cgroup_leaks(env)]
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.05)


def clean_up_after_leak(env: Env) -> None:
    """Best effort, so one failing test does not poison the next ones."""
    for root in env.roots:
        try:
            names = os.listdir(root)
        except OSError:
            continue
        for n in names:
            subprocess.run([PYOCI, "--root", str(root), "delete", "--force", n],
                           capture_output=True, timeout=30)
    for pid, _ in find_process_leaks(env):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for line in reversed(find_mount_leaks(env)):
        mnt = line.split()[4]
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    for top in find_cgroup_leaks(env):
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def remove_tree(path: Path) -> None:
    """rmtree that never crosses a mount point (a leaked bind mount must not
    make us delete host files)."""
    if not path.exists():
        return
    dev = path.lstat().st_dev

    def onexc(func: Any, p: str, exc: Any) -> None:
        pass

    for dirpath, dirnames, _ in os.walk(path):
        for d in list(dirnames):
            full = os.path.join(dirpath, d)
            try:
                if os.lstat(full).st_dev != dev or os.path.ismount(full):
                    return  # leave everything in place
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)


# -- small utilities --------------------------------------------------------------


def read_all(fd: int, timeout: float = 5.0) -> bytes:
    """What ``fd`` (a pty master) gives until it ends, stays quiet after
    some output, or ``timeout`` passes."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            if out:
                break
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


@dataclass
class ConsoleRun:
    """What `create --console-socket` sent (the message, the (level, type)
    of each control message, the fds passed) and what the container wrote
    on its terminal."""
    msg: bytes
    cmsgs: list[tuple[int, int]]
    fds: list[int]
    out: str


def run_with_console_socket(env: Env, bundle: Bundle) -> ConsoleRun:
    """`create` with a --console-socket this listens on, take the pty master
    it sends, `start`, read the container's output from the master; then
    wait for it to stop and delete it."""
    path = str(env.path("console.sock"))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    bundle.save()
    cid = env.cid()
    fds = array.array("i")
    conn = None
    try:
        env.pyoci("create", "--bundle", str(bundle.path), "--console-socket", path, cid).ok()
        conn, _ = srv.accept()
        msg, anc, _flags, _addr = conn.recvmsg(256, socket.CMSG_LEN(4 * 4))
        for level, kind, data in anc:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                fds.frombytes(data[: len(data) - len(data) % 4])
        assert fds, "no fd came with the console socket's message"
        env.pyoci("start", cid).ok()
        out = read_all(fds[0]).decode()
        return ConsoleRun(msg, [(level, kind) for level, kind, _ in anc], list(fds), out)
    finally:
        for fd in fds:
            os.close(fd)
        if conn is not None:
            conn.close()
        srv.close()
        env.wait_status(cid, "stopped")
        env.pyoci("delete", cid).ok()


def wait_for(pred: Callable[[], Any], timeout: float = 10, what: str = "condition",
             interval: float = 0.02) -> Any:
    """pred()'s first true value, polled every INTERVAL seconds; AssertionError
    naming WHAT after TIMEOUT seconds.  The one poll loop of the test suite."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    return _proc_state(pid) not in ("Z", "X", "x", "?")


def ns_inode(pid: int | str, ns: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{ns}").st_ino


def mountinfo_entry(mountinfo: str, mountpoint: str) -> dict[str, Any]:
    """The last mountinfo line for mountpoint, split into its fields."""
    found = None
    for line in mountinfo.splitlines():
        parts = line.split()
        if len(parts) < 10 or parts[4] != mountpoint:
            continue
        sep = parts.index("-")
        found = {
            "mount_options": set(parts[5].split(",")),
            "optional": parts[6:sep],
            "fstype": parts[sep + 1],
            "source": parts[sep + 2],
            "super_options": set(parts[sep + 3].split(",")),
            "line": line,
        }
    if found is None:
        raise AssertionError(f"{mountpoint} not in mountinfo:\n{mountinfo}")
    return found


def caps_mask(names: Iterable[str]) -> int:
    from pyoci.linux.names import CAPABILITIES

    m = 0
    for n in names:
        m |= 1 << CAPABILITIES[n]
    return m


def status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def deep(cfg: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(cfg)


def file_mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def cgroup_dirs_named(cid: str, *, exact: bool = True, depth: int | None = 3) -> list[str]:
    """Cgroup directories named after ``cid`` (or, with exact=False, whose
    name holds it) in any hierarchy, down to ``depth`` levels below its root
    (None: all the way)."""
    left = []
    for hier in sorted(os.listdir("/sys/fs/cgroup")):
        top = Path("/sys/fs/cgroup") / hier
        if not top.is_dir() or top.is_symlink():
            continue
        for dirpath, dirnames, _ in os.walk(top):
            if depth is not None and dirpath.count("/") - str(top).count("/") >= depth:
                dirnames.clear()
            left += [os.path.join(dirpath, d) for d in dirnames if (d == cid if exact else cid in d)]
    return left
