"""pyoci doctor: can the current user run (rootless) containers on this machine?

``CHECKS`` is an ordered list of (name, function); each function takes a
:class:`Context` and returns a list of results::

    {"name": "subuid", "status": "ok" | "warn" | "fail",
     "found": "what the machine has", "fix": "command or action ('' when ok)"}

Checks that need the kernel's word try the real thing in a forked child
(creating a user namespace, mounting overlayfs in one, chown'ing a fresh file
to a subordinate id with the maps newuidmap/newgidmap write), so what they
report is what a container would meet, not what a version number suggests.
Nothing a check does outlives it: the children exit, their namespaces go with
them, and the probe files and directories are removed.
"""

from __future__ import annotations

import os

from pyoci.linux import subid
from pyoci.linux.consts import CLONE_NEWNS, CLONE_NEWUSER, MS_PRIVATE, MS_REC
from pyoci.linux.mounts import mountinfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyoci.cgroups.manager import Manager

    Result = dict[str, str]

OK, WARN, FAIL = "ok", "warn", "fail"

NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs",
                        "lustre", "gpfs", "beegfs", "fuse.sshfs", "fuse.glusterfs", "fuse.ceph"})


def result(name: str, status: str, found: str, fix: str = "") -> Result:
    return {"name": name, "status": status, "found": found, "fix": fix}


class Context:
    """Who runs doctor and what to look at."""

    __slots__ = ("uid", "gid", "user", "home", "paths", "state_root", "env", "_cache")

    def __init__(self, paths: list[str], *, state_root: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        import pwd

        self.uid = os.getuid()
        self.gid = os.getgid()
        self.env = dict(os.environ if env is None else env)
        try:
            pw = pwd.getpwuid(self.uid)
            self.user: str | None = pw.pw_name
            self.gid = pw.pw_gid
            home = pw.pw_dir
        except KeyError:
            self.user = None
            home = "/"
        self.home = self.env.get("HOME") or home
        self.paths = paths
        self.state_root = state_root
        self._cache: dict[str, Any] = {}

    @property
    def root(self) -> bool:
        return os.geteuid() == 0

    @property
    def name(self) -> str:
        return self.user or str(self.uid)

    def subid_entries(self, kind: str) -> list[subid.Entry]:
        key = "sub" + kind
        if key not in self._cache:
            self._cache[key] = subid.read(kind)
        entries: list[subid.Entry] = self._cache[key]
        return entries

    def ranges(self, kind: str) -> list[tuple[int, int]]:
        if subid.nss_source() != "files":
            got = subid.getsubids(self.name, kind)
            if got is not None:
                return got
        return subid.ranges_for(self.user, self.uid, entries=self.subid_entries(kind))


def default_paths(state_root: str, home: str | None = None) -> list[str]:
    home = home or os.environ.get("HOME") or os.path.expanduser("~")
    return [state_root, os.path.join(home, ".local", "share", "containers")]


# -- small system helpers -------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _errno_text(err: int) -> str:
    import errno as errno_mod

    name = errno_mod.errorcode.get(err, str(err))
    return f"{name} ({os.strerror(err)})"


def _unshare(flags: int) -> int:
    """0 or errno."""
    from pyoci.native._helper import lib

    return -int(lib.pyoci_unshare(flags))


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> int:
    """0 or errno."""
    from pyoci.native._helper import ffi, lib

    def b(s: str | None) -> Any:
        return s.encode() if s is not None else ffi.NULL

    return -int(lib.pyoci_mount(b(source), target.encode(), b(fstype), flags, b(data)))


def _write_own_maps(uid: int, gid: int) -> str | None:
    """In a fresh user namespace: map our own uid and gid to 0 (the one map
    an unprivileged process may write).  None or what failed."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1\n"), ("gid_map", f"0 {gid} 1\n")):
        try:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        except OSError as e:
            return f"write /proc/self/{name}: {_errno_text(e.errno or 0)}"
    return None


def _probe(first: Callable[[], dict[str, Any]], between: Callable[[int], None] | None = None,
           second: Callable[[], dict[str, Any]] | None = None, timeout: float = 20.0) -> dict[str, Any]:
    """Run ``first`` in a forked child; if it reports no "error" and
    ``second`` is given, run ``between(child_pid)`` here (e.g. write the
    child's id maps) and then ``second`` in the child.  Returns the child's
    last report (a JSON-able dict); {"error": ...} when anything breaks."""
    import json
    import select
    import sys
    import time

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    c2p_r, c2p_w = os.pipe()
    p2c_r, p2c_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(c2p_r)
            os.close(p2c_w)

            def send(d: dict[str, Any]) -> None:
                os.write(c2p_w, (json.dumps(d) + "\n").encode())

            try:
                out = first()
                send(out)
                if second is not None and not out.get("error"):
                    if os.read(p2c_r, 1) == b"1":
                        send(second())
            except BaseException as e:  # noqa: B036 - report anything, then _exit
                send({"error": f"{type(e).__name__}: {e}"})
        finally:
            os._exit(0)
    os.close(c2p_w)
    os.close(p2c_r)
    buf = b""
    deadline = time.monotonic() + timeout

    def readline() -> dict[str, Any]:
        nonlocal buf
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([c2p_r], [], [], left)[0]:
                raise TimeoutError(f"the probe did not answer within {timeout:.0f} s")
            chunk = os.read(c2p_r, 65536)
            if not chunk:
                raise EOFError("the probe exited without an answer")
            buf += chunk
        line, _, buf = buf.partition(b"\n")
        d: dict[str, Any] = json.loads(line)
        return d

    try:
        out = readline()
        if second is not None and not out.get("error"):
            go = b"1"
            try:
                if between is not None:
                    between(pid)
            except Exception as e:  # noqa: BLE001 - a failed map is a finding, not a crash
                out = {"error": str(e), "stage": "between"}
                go = b"0"
            os.write(p2c_w, go)
            if go == b"1":
                out = readline()
        return out
    except (TimeoutError, EOFError, ValueError) as e:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        return {"error": str(e)}
    finally:
        os.close(c2p_r)
        os.close(p2c_w)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


# -- the checks -----------------------------------------------------------------------


def check_userns(ctx: Context) -> list[Result]:
    name = "user namespaces"
    facts = []
    problems: list[tuple[str, str]] = []  # (what, fix)
    maxns = _read("/proc/sys/user/max_user_namespaces")
    if maxns is not None:
        facts.append(f"user.max_user_namespaces={maxns}")
        if maxns.isdigit() and int(maxns) == 0:
            problems.append(("user.max_user_namespaces is 0",
                             "as root: sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d/)"))
    clone = _read("/proc/sys/kernel/unprivileged_userns_clone")
    if clone is not None:
        facts.append(f"kernel.unprivileged_userns_clone={clone}")
        if clone == "0" and not ctx.root:
            problems.append(("kernel.unprivileged_userns_clone is 0",
                             "as root: sysctl -w kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d/)"))
    aa = _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if aa is not None:
        facts.append(f"kernel.apparmor_restrict_unprivileged_userns={aa}")
        if aa == "1" and not ctx.root:
            problems.append(("AppArmor restricts unprivileged user namespaces",
                             "as root: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an "
                             "AppArmor profile for pyoci that allows `userns,`"))
    uid, gid = ctx.uid, ctx.gid

    def first() -> dict[str, Any]:
        err = _unshare(CLONE_NEWUSER)
        if err:
            return {"error": f"unshare(CLONE_NEWUSER): {_errno_text(err)}", "errno": err}
        bad = _write_own_maps(uid, gid)
        if bad:
            return {"error": bad}
        return {"ok": True}

    out = _probe(first)
    if out.get("error"):
        facts.append(f"a child could not create one: {out['error']}")
        fix = problems[0][1] if problems else (
            "check the sysctls above, seccomp or a container/sandbox this runs in (it must allow "
            "unshare(CLONE_NEWUSER))")
        return [result(name, FAIL, "; ".join(facts), fix)]
    facts.append("a child created one and mapped its own uid")
    if problems:
        return [result(name, WARN, "; ".join(facts + [p[0] for p in problems]), problems[0][1])]
    return [result(name, OK, "; ".join(facts))]


def _subid_check(ctx: Context, kind: str) -> Result:
    name = "sub" + kind
    path = subid.path_for(kind)
    entries = ctx.subid_entries(kind)
    mine = subid.entries_for(entries, ctx.user, ctx.uid)
    who = f"user {ctx.name} (uid {ctx.uid})" if ctx.user else f"uid {ctx.uid}"
    if ctx.root:
        shown = ", ".join(f"{e.owner}:{e.start}:{e.count}" for e in mine)
        return result(name, OK, "not needed as root (root writes any id map)"
                      + (f"; {path} has {shown}" if shown else ""))
    free = subid.free_start(entries)
    grant = subid.fix_text(kind, ctx.name, free, subid.RECOMMENDED_COUNT)
    src = subid.nss_source()
    if src != "files":
        got = subid.getsubids(ctx.name, kind)
        if got is None:
            return result(name, WARN, f"nsswitch.conf sends subid lookups to {src} and `getsubids` "
                          f"found nothing for {who}", f"ask the {src} administrators for a range of "
                          f"{subid.RECOMMENDED_COUNT} sub{kind}s for {ctx.name}")
        total = sum(c for _s, c in subid.merge(got))
        status = OK if total >= subid.RECOMMENDED_COUNT else WARN
        return result(name, status, f"from {src} (nsswitch.conf): {subid.show(got)}",
                      "" if status == OK else f"ask the {src} administrators for "
                      f"{subid.RECOMMENDED_COUNT} sub{kind}s")
    if not os.path.exists(path):
        return result(name, FAIL, f"{path} does not exist, so no entry for {who}", grant)
    if not os.access(path, os.R_OK):
        return result(name, FAIL, f"{path} is not readable by you",
                      f"as root: chmod 0644 {path}")
    if not mine:
        return result(name, FAIL, f"no entry for {who} in {path}: containers can map only your own {kind}",
                      grant)
    shown = ", ".join(f"{e.owner}:{e.start}:{e.count}" for e in mine)
    total = sum(c for _s, c in subid.merge((e.start, e.count) for e in mine))
    found = f"{path}: {shown} ({total} ids)"
    notes = []
    fix = ""
    for e in mine:
        for other in subid.overlaps(entries, e.start, e.count, user=ctx.user, uid=ctx.uid):
            notes.append(f"{e.start}-{e.end} overlaps {other.owner}'s {other.start}-{other.end}")
    if notes:
        fix = (f"give {ctx.name} a range nobody else has: as root, "
               f"`usermod --del-sub{kind}s {mine[0].start}-{mine[0].end} {ctx.name}` and "
               f"`usermod --add-sub{kind}s {free}-{free + subid.RECOMMENDED_COUNT - 1} {ctx.name}`")
        return result(name, WARN, found + "; " + "; ".join(notes)
                      + " (containers of both users can reach each other's files)", fix)
    if total < subid.RECOMMENDED_COUNT:
        return result(name, WARN, found + f"; fewer than the {subid.RECOMMENDED_COUNT} ids images expect "
                      "(files owned by ids beyond the range cannot be unpacked)", grant)
    return result(name, OK, found)


def check_subids(ctx: Context) -> list[Result]:
    return [_subid_check(ctx, "uid"), _subid_check(ctx, "gid")]


def _helper_check(ctx: Context, tool: str) -> Result:
    import shutil

    exe = shutil.which(tool, path=ctx.env.get("PATH", "") + ":/usr/bin:/usr/sbin:/bin:/sbin")
    if exe is None:
        if ctx.root:
            return result(tool, OK, "not installed; not needed as root")
        return result(tool, FAIL, f"{tool} not found: only your own id can be mapped",
                      "as root: apt-get install uidmap (Fedora: dnf install shadow-utils)")
    from pyoci.linux import proc

    st = os.stat(exe)
    if st.st_uid == 0 and st.st_mode & 0o4000:
        return result(tool, OK, f"{exe} is setuid root")
    if st.st_mode & 0o4000 and not proc.in_initial_userns() and str(st.st_uid) == _read(
            "/proc/sys/kernel/overflowuid"):
        return result(tool, OK, f"{exe} is setuid (its owner, root on the host, is not mapped here)")
    caps = _getcap(exe)
    cap = "cap_setuid" if tool == "newuidmap" else "cap_setgid"
    if caps and cap in caps:
        return result(tool, OK, f"{exe} has file capabilities {caps}")
    if ctx.root:
        return result(tool, OK, f"{exe} is neither setuid root nor has {cap}; not needed as root")
    return result(tool, FAIL, f"{exe} is neither setuid root nor has {cap} (mode {st.st_mode & 0o7777:o}, "
                  f"owner {st.st_uid})", f"as root: chmod u+s {exe} (or setcap {cap}+ep {exe})")


def _getcap(exe: str) -> str:
    import shutil
    import subprocess

    getcap = shutil.which("getcap", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if getcap is None:
        return ""
    try:
        r = subprocess.run([getcap, exe], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.replace(exe, "").strip()


def check_helpers(ctx: Context) -> list[Result]:
    return [_helper_check(ctx, "newuidmap"), _helper_check(ctx, "newgidmap")]


def check_runtime_dir(ctx: Context) -> list[Result]:
    import stat

    name = "XDG_RUNTIME_DIR"
    xdg = ctx.env.get(name)
    make = (f"as root: mkdir -m 0700 /run/user/{ctx.uid} && chown {ctx.name} /run/user/{ctx.uid}; "
            f"then export XDG_RUNTIME_DIR=/run/user/{ctx.uid} (a PAM session with pam_systemd or "
            "pam_xdg does both at login)")
    from pyoci.linux import proc

    if ctx.root and proc.in_initial_userns():
        return result_list(name, OK, "not needed as root (state in /run/pyoci)"
                           + (f"; set to {xdg}" if xdg else ""))
    if not xdg:
        return result_list(name, WARN, f"not set: pyoci keeps its state in /tmp/pyoci-{ctx.uid}, and "
                           "Podman and other tools expect it", make)
    try:
        st = os.stat(xdg)
    except OSError as e:
        return result_list(name, FAIL, f"{xdg}: {_errno_text(e.errno or 0)}", make)
    if not stat.S_ISDIR(st.st_mode):
        return result_list(name, FAIL, f"{xdg} is not a directory", make)
    if st.st_uid != ctx.uid:
        return result_list(name, FAIL, f"{xdg} belongs to uid {st.st_uid}, not to you ({ctx.uid})",
                           f"as root: chown {ctx.name} {xdg}, or point XDG_RUNTIME_DIR at a directory "
                           "of yours")
    mode = stat.S_IMODE(st.st_mode)
    if mode != 0o700:
        return result_list(name, WARN, f"{xdg} has mode {mode:04o}; 0700 expected (other users can see "
                           "your containers' sockets)", f"chmod 0700 {xdg}")
    return result_list(name, OK, f"{xdg} (yours, mode 0700)")


def result_list(name: str, status: str, found: str, fix: str = "") -> list[Result]:
    return [result(name, status, found, fix)]


def check_cgroups(ctx: Context) -> list[Result]:
    from pyoci.cgroups import manager as cgroups

    name = "cgroups"
    cg = cgroups.for_host()
    v1, unified = cg.lay.v1, cg.lay.unified
    try:
        own = cg.own()
    except OSError:
        own = {}
    v2 = bool(unified) and cg.kind == "v2"
    if v2:
        version = f"v2 (unified at {unified})"
    elif unified:
        version = f"hybrid (v1 controllers; cgroup2 at {unified})"
    elif v1:
        version = "v1"
    else:
        return result_list(name, WARN, "no cgroup filesystem mounted: resource limits cannot be applied",
                           "as root: mount -t cgroup2 none /sys/fs/cgroup")
    from pyoci.linux import proc

    if ctx.root and proc.in_initial_userns():
        return result_list(name, OK, f"{version}; root can create cgroups")
    v2_fix = (f"boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1 or cgroup_no_v1=all) and delegate "
              f"a subtree to {ctx.name} (systemd: user@.service with Delegate=yes; without systemd, as root: "
              f"mkdir /sys/fs/cgroup/{ctx.name} && chown -R {ctx.name} /sys/fs/cgroup/{ctx.name})")
    if v2:
        return [_v2_delegation(ctx, cg, version)]
    mine = sorted(c for c, point in v1.items()
                  if not c.startswith("name=") and os.access(
                      os.path.join(point, own.get(c, "/").lstrip("/")), os.W_OK))
    if mine:
        return result_list(name, WARN, f"{version}; writable v1 cgroups for: {' '.join(mine)}; "
                           "a config with resource limits (linux.resources) will be refused", v2_fix)
    return result_list(name, WARN, f"{version}: an unprivileged user gets no cgroup of its own here; "
                       "a config with resource limits (linux.resources) will be refused", v2_fix)


def _v2_delegation(ctx: Context, cg: Manager, version: str) -> Result:
    """What `create` of this caller would do on this v2 host, decided by the
    same code (Manager.delegated_paths): a cgroup beside the caller's own
    in a delegated subtree, one below the caller's own cgroup (only that is
    writable), or none."""
    name = "cgroups"
    lay = cg.lay
    assert lay.unified is not None
    own = os.path.normpath(os.path.join(lay.unified, cg.own().get("", "/").lstrip("/")))
    cid = "ID"
    paths = cg.container_paths(None, cid)
    mine = cg.delegated_paths(None, cid, paths)
    if mine is None:
        mine_dir = f"{lay.unified.rstrip('/')}/{ctx.name}"
        return result(name, WARN, f"{version}; no cgroup v2 subtree is delegated to you (neither your "
                      f"cgroup {own} nor its parent is writable): containers get no cgroup, and a config "
                      "with resource limits (linux.resources) will be refused",
                      f"as root, delegate a subtree to {ctx.name} and start pyoci in a leaf of it "
                      "(systemd: user@.service with Delegate=yes, then systemd-run --user --scope; without "
                      f"systemd: mkdir -p {mine_dir}/shell && chown -R {ctx.name} {mine_dir}, then move "
                      f"the user's shell into {mine_dir}/shell)")
    target = mine[""]
    where = f"containers go to {os.path.dirname(target)}/<id>"
    if target != paths[""]:
        return result(name, WARN, f"{version}; only your own cgroup {own} is writable, not its parent: "
                      f"{where}, below a cgroup that holds processes, where no controller can be enabled: "
                      "placement and pause work, but a config with resource limits (linux.resources) fails",
                      f"start pyoci from a leaf of your cgroup: mkdir {own}/shell && echo $$ > "
                      f"{own}/shell/cgroup.procs (systemd: systemd-run --user --scope)")
    d = target
    while not os.path.isdir(d):
        d = os.path.dirname(d)
    ctrls = (_read(os.path.join(d, "cgroup.controllers")) or "").split()
    if not ctrls:
        return result(name, WARN, f"{version}; delegated to you: {where}, but {d} is offered no controller: "
                      "a config with resource limits (linux.resources) will be refused",
                      f"as root: echo '+cpu +memory +pids' > {os.path.dirname(d)}/cgroup.subtree_control")
    return result(name, OK, f"{version}; delegated to you: {where}; controllers: {' '.join(ctrls)}")


def check_tun(ctx: Context) -> list[Result]:
    import stat

    name = "/dev/net/tun"
    use = "slirp4netns/pasta need it to give rootless containers a network"
    try:
        st = os.stat("/dev/net/tun")
    except OSError as e:
        return result_list(name, WARN, f"missing ({_errno_text(e.errno or 0)}): {use}",
                           "as root: modprobe tun (and mknod /dev/net/tun c 10 200)")
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISCHR(st.st_mode):
        return result_list(name, WARN, f"not a character device: {use}",
                           "as root: rm /dev/net/tun && mknod -m 0666 /dev/net/tun c 10 200")
    if os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return result_list(name, OK, f"mode {mode:04o}, readable and writable by you")
    return result_list(name, WARN, f"mode {mode:04o} owner {st.st_uid}: not readable and writable by you; "
                       f"{use}",
                       'as root: chmod 0666 /dev/net/tun (lasting: a udev rule KERNEL=="tun", MODE="0666" '
                       "in /etc/udev/rules.d/50-tun.rules)")


def _kernel() -> str:
    return os.uname().release


def _kernel_at_least(major: int, minor: int) -> bool:
    rel = _kernel().split("-")[0].split(".")
    try:
        return (int(rel[0]), int(rel[1])) >= (major, minor)
    except (ValueError, IndexError):
        return False


def check_clone3(ctx: Context) -> list[Result]:
    from pyoci.native._helper import lib

    if lib.pyoci_clone3_probe() == -38:  # ENOSYS
        return result_list("clone3", WARN, f"clone3 returns ENOSYS (kernel {_kernel()}, or seccomp)",
                           "a kernel >= 5.3 (pyoci's helper uses clone, so it still works)")
    return result_list("clone3", OK, f"available (kernel {_kernel()})")


def check_mount_api(ctx: Context) -> list[Result]:
    from pyoci.native._helper import lib

    missing = [name for name, probe in (("open_tree", lib.pyoci_open_tree_probe),
                                        ("mount_setattr", lib.pyoci_mount_setattr_probe))
               if probe() == -38]  # ENOSYS
    if missing:
        return result_list("mount API", WARN,
                           f"{', '.join(missing)} unavailable (ENOSYS; kernel {_kernel()})",
                           "a kernel >= 5.12 for open_tree/mount_setattr")
    return result_list("mount API", OK, "open_tree and mount_setattr available")


def check_timens(ctx: Context) -> list[Result]:
    if os.path.exists("/proc/self/ns/time"):
        return result_list("time namespace", OK, "/proc/self/ns/time exists")
    return result_list("time namespace", WARN, f"no /proc/self/ns/time (kernel {_kernel()}): "
                       "configs with a time namespace will fail", "a kernel >= 5.6 with CONFIG_TIME_NS")


def _userns_mount_probe(ctx: Context) -> dict[str, Any]:
    """In a child: a user+mount namespace with our own ids mapped, a tmpfs,
    an overlayfs on it, and an idmapped clone of the tmpfs."""
    if "mountprobe" in ctx._cache:
        cached: dict[str, Any] = ctx._cache["mountprobe"]
        return cached
    import shutil
    import tempfile

    base = ctx.env.get("XDG_RUNTIME_DIR") if not ctx.root else None
    try:
        tmp = tempfile.mkdtemp(prefix="pyoci-doctor-", dir=base if base and os.path.isdir(base) else None)
    except OSError as e:
        out: dict[str, Any] = {"error": f"mkdtemp: {_errno_text(e.errno or 0)}"}
        ctx._cache["mountprobe"] = out
        return out
    uid, gid = ctx.uid, ctx.gid

    def first() -> dict[str, Any]:
        from pyoci.native._helper import lib

        err = _unshare(CLONE_NEWUSER | CLONE_NEWNS)
        if err:
            return {"error": f"unshare(CLONE_NEWUSER|CLONE_NEWNS): {_errno_text(err)}"}
        bad = _write_own_maps(uid, gid)
        if bad:
            return {"error": bad}
        err = _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        if err:
            return {"error": f"make / private: {_errno_text(err)}"}
        err = _mount("tmpfs", tmp, "tmpfs", 0, "mode=0755")
        if err:
            return {"error": f"mount tmpfs in a user namespace: {_errno_text(err)}"}
        for d in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(tmp, d))
        with open(os.path.join(tmp, "lower", "file"), "w") as f:
            f.write("x")
        out: dict[str, Any] = {}
        opts = f"lowerdir={tmp}/lower,upperdir={tmp}/upper,workdir={tmp}/work"
        err = _mount("overlay", f"{tmp}/merged", "overlay", 0, opts)
        if err:
            err2 = _mount("overlay", f"{tmp}/merged", "overlay", 0, opts + ",userxattr")
            out["overlay"] = err if err2 else 0
            out["overlay_opts"] = "userxattr" if not err2 else ""
        else:
            out["overlay"] = 0
        if out["overlay"] == 0:
            try:
                with open(f"{tmp}/merged/file", "a") as f:
                    f.write("y")   # a copy-up into the upper layer
            except OSError as e:
                out["overlay"] = e.errno or 0
                out["overlay_step"] = "copy-up write"
        fd = lib.pyoci_open_tree_clone(f"{tmp}/lower".encode())
        if fd < 0:
            out["idmap"] = -fd
            out["idmap_step"] = "open_tree"
            return out
        # The idmapping must come from another user namespace than the
        # tmpfs's own (the kernel refuses the filesystem's idmapping with
        # EINVAL): a grandchild makes one nested in ours.
        out["idmap_step"] = "mount_setattr(MOUNT_ATTR_IDMAP) on tmpfs"
        ready_r, ready_w = os.pipe()
        hold_r, hold_w = os.pipe()
        gp = os.fork()
        if gp == 0:
            try:
                os.close(ready_r)
                os.close(hold_w)
                uerr = _unshare(CLONE_NEWUSER)
                if not uerr:
                    _write_own_maps(0, 0)
                os.write(ready_w, str(uerr).encode())
                os.read(hold_r, 1)
            finally:
                os._exit(0)
        os.close(ready_w)
        os.close(hold_r)
        try:
            uerr = int(os.read(ready_r, 16) or b"-1")
            if uerr:
                out["idmap"] = uerr if uerr > 0 else 22
                out["idmap_step"] = "a nested user namespace for the idmapping"
                return out
            ufd = os.open(f"/proc/{gp}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
            r = lib.pyoci_mount_setattr_idmap(fd, ufd)
            out["idmap"] = -r if r < 0 else 0
        finally:
            os.close(ready_r)
            os.close(hold_w)
            os.waitpid(gp, 0)
        return out

    try:
        result_ = _probe(first)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ctx._cache["mountprobe"] = result_
    return result_


def check_overlay(ctx: Context) -> list[Result]:
    name = "overlayfs"
    out = _userns_mount_probe(ctx)
    if out.get("error"):
        return result_list(name, WARN, f"could not test: {out['error']}",
                           "see the user namespaces check; without overlayfs, image storage needs "
                           "fuse-overlayfs or the vfs driver")
    err = out.get("overlay", 0)
    if err:
        step = out.get("overlay_step", "mount")
        return result_list(name, WARN, f"overlayfs {step} in a user namespace failed: {_errno_text(err)} "
                           f"(kernel {_kernel()})", "a kernel >= 5.11 (rootless overlay), or install "
                           "fuse-overlayfs for Podman's storage")
    how = " (with userxattr)" if out.get("overlay_opts") else ""
    return result_list(name, OK, f"mountable in a user namespace{how}, copy-up works")


def check_idmapped(ctx: Context) -> list[Result]:
    name = "idmapped mounts"
    if not _kernel_at_least(5, 12):
        return result_list(name, WARN, f"kernel {_kernel()} < 5.12", "a kernel >= 5.12")
    out = _userns_mount_probe(ctx)
    if out.get("error"):
        return result_list(name, WARN, f"could not test: {out['error']}", "see the user namespaces check")
    err = out.get("idmap", 0)
    if err:
        return result_list(name, WARN, f"{out.get('idmap_step', 'idmap')} in a user namespace: "
                           f"{_errno_text(err)} (kernel {_kernel()}; tmpfs supports them from 6.3)",
                           "not needed: without them rootless images are chown'ed to the mapped ids")
    return result_list(name, OK, f"{out.get('idmap_step', 'idmap')} works in a user namespace")


def fs_type(path: str) -> tuple[str, str, str]:
    """(fstype, source, mount point) of the mount holding ``path`` (longest
    mount point prefix in /proc/self/mountinfo, the last one when stacked)."""
    real = os.path.realpath(path)
    best = ("?", "?", "/")
    best_len = -1
    for point, fstype, src, _ in mountinfo():
        if real == point or real.startswith(point.rstrip("/") + "/") or point == "/":
            if len(point) >= best_len:
                best = (fstype, src, point)
                best_len = len(point)
    return best


STORAGE_FIX = ("keep container storage on a local filesystem: in ~/.config/containers/storage.conf set "
               '[storage] graphroot = "/var/tmp/{user}/containers/storage" (a local directory of yours); '
               "or give yourself a loop-mounted image (as root: truncate -s 20G /var/lib/{user}.img && "
               "mkfs.ext4 /var/lib/{user}.img && mount -o loop /var/lib/{user}.img DIR && chown {user} DIR) "
               "and use DIR; for pyoci's state use --root on a local directory")


def _chown_probe(path: str, uid: int, gid: int) -> dict[str, Any]:
    """In the current process (a child): create a fresh file in path, lchown
    it to uid:gid, check, remove it."""
    f = os.path.join(path, f".pyoci-doctor-{os.getpid()}")
    try:
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        return {"error": f"create {f}: {_errno_text(e.errno or 0)}", "step": "create"}
    os.close(fd)
    try:
        try:
            os.lchown(f, uid, gid)
        except OSError as e:
            return {"chown": e.errno or 0, "file": f}
        st = os.lstat(f)
        return {"chown": 0, "file": f, "uid": st.st_uid, "gid": st.st_gid}
    finally:
        try:
            os.unlink(f)
        except OSError:
            pass


def _root_probe_ids() -> tuple[int, int] | None:
    """The ids root chowns its probe file to: 100000 (a typical subordinate
    id) on the host; inside a user namespace (rootless Podman's "root") the
    first id other than 0 that the namespace maps."""
    from pyoci.linux import proc

    if proc.in_initial_userns():
        return 100000, 100000
    picked = []
    for name in ("uid_map", "gid_map"):
        found = None
        for line in (_read(f"/proc/self/{name}") or "").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                inner, count = int(parts[0]), int(parts[2])
                if inner + count - 1 >= 1:
                    found = max(inner, 1)
                    break
        if found is None:
            return None
        picked.append(found)
    return picked[0], picked[1]


def _storage_check(ctx: Context, path: str) -> Result:
    import stat

    name = f"storage {path}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return result(name, OK, "not present")
    except OSError as e:
        return result(name, WARN, f"cannot stat: {_errno_text(e.errno or 0)}",
                      "check the permissions of the directories above it")
    fstype, src, point = fs_type(path)
    where = f"{fstype} ({src} on {point})"
    if not stat.S_ISDIR(st.st_mode):
        return result(name, WARN, f"{where}; not a directory", "")
    if not os.access(path, os.W_OK | os.X_OK):
        return result(name, WARN, f"{where}; not writable by you, so the chown probe was skipped",
                      f"as root: chown {ctx.name} {path}")
    fix = STORAGE_FIX.format(user=ctx.name)
    net = fstype in NETWORK_FS or fstype.split(".")[0] in ("nfs", "cifs")
    if ctx.root:
        ids = _root_probe_ids()
        if ids is None:
            return result(name, WARN, f"{where}; chown probe skipped: this user namespace maps a "
                          "single id", "run doctor as the user who owns the namespace")
        out = _probe(lambda: _chown_probe(path, ids[0], ids[1]))
        target = f"uid {ids[0]}"
        inside = ids
    else:
        uranges, granges = ctx.ranges("uid"), ctx.ranges("gid")
        if not uranges or not granges:
            return result(name, WARN, f"{where}; chown probe skipped: you have no subordinate "
                          f"{'uids' if not uranges else 'gids'} (see the subuid/subgid checks)",
                          subid.fix_text("uid" if not uranges else "gid", ctx.name,
                                         subid.free_start(ctx.subid_entries("uid" if not uranges else "gid")),
                                         subid.RECOMMENDED_COUNT))
        us, un = uranges[0]
        gs, gn = granges[0]
        un, gn = min(un, subid.RECOMMENDED_COUNT), min(gn, subid.RECOMMENDED_COUNT)
        uid, gid = ctx.uid, ctx.gid

        def first() -> dict[str, Any]:
            err = _unshare(CLONE_NEWUSER)
            if err:
                return {"error": f"unshare(CLONE_NEWUSER): {_errno_text(err)}"}
            return {}

        def between(pid: int) -> None:
            from pyoci.linux import idmap
            from pyoci.plan.build import IdMap

            idmap.write_with_helpers(pid, IdMap([(0, uid, 1), (1, us, un)], [(0, gid, 1), (1, gs, gn)], None))

        out = _probe(first, between, lambda: _chown_probe(path, 1, 1))
        target = f"subordinate uid {us} (container uid 1)"
        inside = (1, 1)
    if out.get("error"):
        if out.get("stage") == "between":
            return result(name, WARN, f"{where}; could not map your subordinate ids: {out['error']}",
                          "see the subuid/subgid and newuidmap checks")
        return result(name, WARN, f"{where}; chown probe could not run: {out['error']}",
                      "see the user namespaces check" if not ctx.root else "")
    err = out.get("chown", 0)
    if err:
        return result(name, FAIL, f"{where}; lchown {out.get('file')} to {target}: {_errno_text(err)}: this "
                      "filesystem refuses files owned by other ids (the NFS/FUSE home directory "
                      "failure: image layers cannot be unpacked here)", fix)
    if (out.get("uid"), out.get("gid")) != inside:
        return result(name, FAIL, f"{where}; lchown to {target} reported success but the file shows "
                      f"{out.get('uid')}:{out.get('gid')}", fix)
    note = " (a network filesystem: it may still misbehave with xattrs and locks)" if net else ""
    return result(name, OK, f"{where}; a fresh file can be chown'ed to {target}{note}")


def check_storage(ctx: Context) -> list[Result]:
    return [_storage_check(ctx, p) for p in ctx.paths]


CHECKS: list[tuple[str, Callable[[Context], list[Result]]]] = [
    ("user namespaces", check_userns),
    ("subordinate ids", check_subids),
    ("id map helpers", check_helpers),
    ("XDG_RUNTIME_DIR", check_runtime_dir),
    ("cgroups", check_cgroups),
    ("/dev/net/tun", check_tun),
    ("clone3", check_clone3),
    ("mount API", check_mount_api),
    ("idmapped mounts", check_idmapped),
    ("time namespace", check_timens),
    ("overlayfs", check_overlay),
    ("storage", check_storage),
]


def run_checks(ctx: Context, only: list[str] | None = None) -> list[Result]:
    out: list[Result] = []
    for name, fn in CHECKS:
        if only is not None and name not in only:
            continue
        try:
            out += fn(ctx)
        except Exception as e:  # noqa: BLE001 - a broken check is reported, the others still run
            out.append(result(name, FAIL, f"the check itself failed: {type(e).__name__}: {e}",
                              "report this as a pyoci bug"))
    return out


def failed(results: list[Result]) -> bool:
    return any(r["status"] == FAIL for r in results)


def format_table(results: list[Result], ctx: Context | None = None) -> str:
    lines = []
    if ctx is not None:
        who = f"{ctx.user} " if ctx.user else ""
        lines.append(f"pyoci doctor: {who}(uid {ctx.uid}, gid {ctx.gid})"
                     + (", root" if ctx.root else ", rootless"))
    width = max([len(r["name"]) for r in results] + [5])
    lines.append(f"{'STATUS':<6}  {'CHECK':<{width}}  FOUND")
    for r in results:
        status = r["status"].upper() if r["status"] == FAIL else r["status"]
        lines.append(f"{status:<6}  {r['name']:<{width}}  {r['found']}")
        if r["fix"] and r["status"] != OK:
            lines.append(f"{'':<6}  {'':<{width}}  fix: {r['fix']}")
    counts = {s: sum(1 for r in results if r["status"] == s) for s in (OK, WARN, FAIL)}
    lines.append(f"{counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failure(s)")
    return "\n".join(lines) + "\n"
