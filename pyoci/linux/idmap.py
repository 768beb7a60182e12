"""Writing a user namespace's uid/gid maps (SYNC 1 of the spawn protocol)."""

from __future__ import annotations

import os

from pyoci.errors import PyociError
from pyoci.plan.build import IdMap


def _write(path: str, text: str, what: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        hint = None
        if what != "setgroups" and e.errno == 1:
            hint = ("an unprivileged user may map only its own uid and gid; wider maps need "
                    "newuidmap/newgidmap and entries in /etc/subuid and /etc/subgid")
        raise PyociError(f"write {what} {text.strip()!r} to {path}", op=f"write {what}",
                         path=path, errno=e.errno, hint=hint) from None


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
