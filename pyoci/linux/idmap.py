"""Writing a user namespace's uid/gid maps (SYNC 1 of the spawn protocol), and the
user namespaces of idmapped mounts."""

from __future__ import annotations

import os

from pyoci.errors import PyociError
from pyoci.linux.proc import write_text
from pyoci.plan.build import IdMap, MountIdMap, Op


def _write(path: str, text: str, what: str) -> None:
    try:
        write_text(path, text)
    except OSError as e:
        hint = None
        if what == "uid_map" and e.errno == 1 and os.geteuid() == 0 and _maps_root(text) \
                and not _has_cap(CAP_SETFCAP):
            hint = ("mapping uid 0 of this user namespace (hostID 0) into a new one needs "
                    "CAP_SETFCAP in this one (Linux >= 5.12), and pyoci runs without it: when "
                    "pyoci runs inside a container, give that container CAP_SETFCAP (bounding, "
                    "effective, permitted); or map another hostID")
        elif what != "setgroups" and e.errno == 1:
            hint = ("an unprivileged user may map only its own uid and gid; wider maps need "
                    "newuidmap/newgidmap and entries in /etc/subuid and /etc/subgid")
        raise PyociError(f"write {what} {text.strip()!r} to {path}", op=f"write {what}",
                         path=path, errno=e.errno, hint=hint) from None


CAP_SETFCAP = 31


def _maps_root(text: str) -> bool:
    return any(len(f) == 3 and f[1] == "0" for f in (line.split() for line in text.splitlines()))


def _has_cap(cap: int) -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> cap & 1)
    except (OSError, ValueError):
        pass
    return True


def write_direct(pid: int, idmap: IdMap) -> None:
    if idmap.setgroups:
        _write(f"/proc/{pid}/setgroups", idmap.setgroups, "setgroups")
    _write(f"/proc/{pid}/uid_map", idmap.uid_map(), "uid_map")
    _write(f"/proc/{pid}/gid_map", idmap.gid_map(), "gid_map")


def write_with_helpers(pid: int, idmap: IdMap) -> None:
    """newuidmap/newgidmap: setuid helpers that check /etc/subuid and /etc/subgid.

    The same check runs here first (pyoci.linux.subid), so a map the helpers
    would refuse fails with the config field, the host range and the fix
    rather than the helper's terse message.  When a helper fails anyway its
    own message is shown with the entries it needed."""
    import shutil
    import subprocess

    from pyoci.linux import subid

    subid.check_idmap(idmap.uid_lines, idmap.gid_lines)
    user, uid, gid = subid.caller()
    for tool, lines, what, own in (("newgidmap", idmap.gid_lines, "gid", gid),
                                   ("newuidmap", idmap.uid_lines, "uid", uid)):
        exe = shutil.which(tool) or f"/usr/bin/{tool}"
        if not os.path.exists(exe):
            raise PyociError(f"{tool} not found", op=tool,
                             hint=f"install the uidmap package to map more than your own {what}")
        args = [exe, str(pid)]
        for c, h, s in lines:
            args += [str(c), str(h), str(s)]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            msg = " ".join(r.stderr.split()) or f"exit status {r.returncode}"
            need = subid.needed_entries(lines, own, what, user, uid)
            raise PyociError(f"{tool} {' '.join(args[1:])}: {msg}", op=tool,
                             hint=f"it needed {subid.path_for(what)} to grant {need} "
                                  f"(see `pyoci doctor`)")


# -- idmapped mounts ------------------------------------------------------------------


def mount_usernses(ops: list[Op]) -> dict[int, int]:
    """For every idmapped mount op (flag "idmap"): an fd of the user namespace
    that holds its mappings; op index -> fd.  Mounts with the same mappings
    share one.  The caller closes the fds (once stage1 has its copy)."""
    made: dict[tuple[object, ...], int] = {}
    out: dict[int, int] = {}
    try:
        for i, op in enumerate(ops):
            m = op.idmap
            if m is None:
                continue
            key = m.key()
            if key not in made:
                made[key] = _open_mount_userns(m)
            out[i] = made[key]
    except BaseException:
        for fd in made.values():
            os.close(fd)
        raise
    return out


def _open_mount_userns(m: MountIdMap) -> int:
    if m.path:
        try:
            return os.open(m.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise PyociError(f"open the user namespace {m.path} for the idmapped mount ({m.field})",
                             op="open", path=m.path, errno=e.errno) from None
    from pyoci.native._helper import lib

    pid = lib.pyoci_userns_holder()
    if pid < 0:
        raise PyociError(f"create a user namespace for the idmapped mount ({m.field})", op="clone",
                         errno=-pid, hint="see `pyoci doctor` (user namespaces)")
    try:
        _write_mount_maps(pid, m)
        try:
            return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise PyociError(f"open the user namespace of the idmapped mount ({m.field})", op="open",
                             errno=e.errno) from None
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def _write_mount_maps(pid: int, m: MountIdMap) -> None:
    """Root writes any map; others their own id directly, anything wider
    through newuidmap/newgidmap (errors then name the mount's fields)."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        write_direct(pid, IdMap(m.uid_lines, m.gid_lines, None))
        return
    if m.uid_lines == [(m.uid_lines[0][0], uid, 1)] and m.gid_lines == [(m.gid_lines[0][0], gid, 1)]:
        write_direct(pid, IdMap(m.uid_lines, m.gid_lines, "deny"))
        return
    base = m.field.rsplit(".", 1)[0]      # $.mounts[i]
    try:
        write_with_helpers(pid, IdMap(m.uid_lines, m.gid_lines, None))
    except PyociError as e:
        def fix(text: str | None) -> str | None:
            return text.replace("$.linux.", base + ".") if text else text

        raise PyociError(fix(e.msg) or "", op=e.op, path=e.path, field=fix(e.field), errno=e.errno,
                         hint=fix(e.hint)) from None


def idmapped_mounts_supported() -> bool:
    """Whether this kernel has idmapped mounts: mount_setattr(2) exists (it
    came with them, in Linux 5.12).  Whether a given filesystem supports
    them is only known when a mount is made."""
    from pyoci.native._helper import lib

    return bool(lib.pyoci_mount_setattr_probe() == 0)
