"""kill(0, sig) from inside a container reaches nothing outside it.

A process group is not a namespace: kill(0, SIGTERM) signals every member of
the sender's process group, whatever pid namespace each member lives in.  An
`exec`'d process left in its caller's process group (the engine's: conmon,
the containerd shim, a `podman exec` of a script) can therefore kill them.
runc and crun always setsid() the container's processes; so does pyoci, for
the init of `create`/`run` and for every `exec`.

Here the caller of `pyoci exec` (as root, or as the rootless test user) runs
in a process group of its own together with a sacrificial `sleep` of the
same user, and the container's process runs `kill -TERM 0`.  The naive path
(new namespaces, no setsid) first shows the sleep dying.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from helpers.ocitest import BASE_PATH, PYOCI, pid_alive, wait_for
from helpers.secutil import Side, describe

# The caller: a new session (so a process group of its own) holding the
# victim, then the command in the same process group.
GROUP = 'sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {victim}\nexec "$@"\n'


def stat_fields(text: str) -> tuple[int, int, int]:
    """pid, process group and session of a /proc/PID/stat line."""
    fields = text[text.rindex(")") + 2:].split()
    return int(text.split()[0]), int(fields[2]), int(fields[3])


def in_group_with_victim(side: Side, cmd: list[str], env: dict[str, str],
                         name: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run cmd in a new process group that also holds a `sleep` of the same
    user (for the rootless side, cmd is `runuser ... env -i VARS PROGRAM ...`
    and the group starts at PROGRAM); return the result and the sleep's pid.
    Returns once every process holding the output pipe has exited."""
    victim_file = side.workdir(name) / "victim.pid"
    side.chown(victim_file.parent)
    wrapper = ["setsid", "--wait", "bash", "-c", GROUP.format(victim=shlex.quote(str(victim_file))), "bash"]
    at = next(i for i, a in enumerate(cmd) if a in (PYOCI, "unshare"))
    p = subprocess.run([*cmd[:at], *wrapper, *cmd[at:]], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, env=env)
    return p, int(victim_file.read_text())


def as_side_user(side: Side, cmd: list[str]) -> tuple[list[str], dict[str, str]]:
    if side.user is None:
        return cmd, {"PATH": BASE_PATH}
    wrapped = ["runuser", "-u", side.user.name, "--", "env", "-i", f"PATH={BASE_PATH}", *cmd]
    return wrapped, {"PATH": BASE_PATH}


def finish(victim: int) -> None:
    try:
        os.kill(victim, 9)
    except ProcessLookupError:
        pass


def test_exec_kill_zero_stays_inside(side: Side) -> None:
    # The naive path: without setsid, a process in new user/pid/mount
    # namespaces kills its caller's process group.
    uns = ["unshare", "--mount", "--propagation", "private"]
    if side.user is not None:
        uns += ["--user", "--map-root-user"]
    uns += ["--pid", "--fork", "--mount-proc", "sh", "-c", "kill -TERM 0; echo survived"]
    p, victim = in_group_with_victim(side, *as_side_user(side, uns), "naive")
    try:
        wait_for(lambda: not pid_alive(victim), timeout=5,
                 what=f"the naive kill(0) to reach the victim: {describe(p)}")
    finally:
        finish(victim)

    b = side.bundle(["sleep", "1000"])
    side.save(b)
    cid = side.oci.cid()
    side.pyoci("create", "--bundle", str(b.path), cid).ok()
    try:
        side.pyoci("start", cid).ok()
        init = side.pyoci("state", cid).ok().json()["pid"]
        # The init leads a session (and so a process group) of its own.
        pid, pgrp, sid = stat_fields(Path(f"/proc/{init}/stat").read_text())
        assert pgrp == pid and sid == pid, f"the init {pid} is in process group {pgrp}, session {sid}"

        script = 'read a b c d e f rest < /proc/self/stat; echo "ids $a $e $f"; kill -TERM 0; echo survived'
        for extra in ([], ["--detach"]):
            cmd, env = side.oci.command(["exec", *extra, cid, "sh", "-c", script], root=side.root,
                                        user=side.user, env=side.env())
            p, victim = in_group_with_victim(side, cmd, env if side.user is None else {"PATH": BASE_PATH},
                                             "exec" + "".join(extra))
            try:
                assert pid_alive(victim), (f"exec {extra}: kill(0) in the container reached the caller's "
                                           f"process group (the victim {victim} died)\n{describe(p)}")
                # pid, process group and session as the container sees them:
                # its own (a process group outside the container reads 0)
                ids = next((ln.split()[1:] for ln in p.stdout.splitlines() if ln.startswith("ids ")), None)
                assert ids is not None and ids[0] == ids[1] == ids[2] != "0", \
                    f"exec {extra}: the process's pid, pgrp, sid: {ids}\n{describe(p)}"
                # kill(0) ran, and reached the exec'd shell itself
                assert "survived" not in p.stdout, describe(p)
                assert p.returncode == (0 if extra else 143), describe(p)
            finally:
                finish(victim)
    finally:
        side.pyoci("delete", "--force", cid)
