"""CVE-2019-16884: a mount over /proc (an image's volume) made runc write the
AppArmor label into a regular file instead of /proc/self/attr/exec, so the
container ran unconfined while the runtime believed otherwise; and mount
destinations inside /proc that are symlinks, or magic links to the runtime
process's own cwd, root and fds.

This machine has no LSM that pyoci could apply (AppArmor is not built in;
SELinux is built in but not enabled), so the label bypass itself cannot be
shown against pyoci.  What is checked instead:

* a requested label is never silently dropped: create refuses it, and so
  must every way `exec` can ask for one (--apparmor, --process-label, and
  apparmorProfile/selinuxLabel in an `exec --process` file), including the
  CVE's configuration (a volume over /proc);
* a mount destination through /proc/self (a symlink) to the magic links
  /proc/self/cwd, /proc/self/root and /proc/self/fd/N, which lead to the
  runtime process's host cwd, the host's / and the caller's files: pyoci
  must refuse it or keep the mount inside the rootfs (seen, before
  pivot_root, by a createRuntime hook).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.secutil import Side, describe, hook_mountinfo, mountinfo_hook, mounts_outside, refused

APPARMOR = os.path.exists("/sys/module/apparmor/parameters/enabled")
SELINUX = os.path.exists("/sys/fs/selinux/enforce")
PROC_SUPER_MAGIC = "9fa0"

pytestmark = pytest.mark.skipif(APPARMOR or SELINUX, reason="an LSM is enabled here: these tests assume none")


def _fake_proc(side: Side) -> Path:
    """An image's volume for /proc: self/attr/{exec,current} as plain files."""
    fake = side.workdir("fakeproc")
    attr = fake / "self" / "attr"
    attr.mkdir(parents=True)
    for name in ("exec", "current"):
        (attr / name).write_text("unconfined\n")
    for p in (fake / "self", attr, attr / "exec", attr / "current"):
        side.chown(p)
    return fake


def test_apparmor_label_over_fake_proc(side: Side) -> None:
    fake = _fake_proc(side)
    b = side.bundle(["true"])
    # The unprotected path: with a volume over /proc the label write "succeeds"
    # into a plain file, and the runtime goes on as if the process were confined.
    p = side.naive('mount --bind "$FAKE" "$ROOTFS/proc" && '
                   'echo "exec docker-default" > "$ROOTFS/proc/self/attr/exec" && '
                   'echo wrote && stat -f -c %t "$ROOTFS/proc/self/attr/exec"',
                   mount_proc=str(b.rootfs / "proc"), env={"FAKE": str(fake), "ROOTFS": str(b.rootfs)})
    lines = p.stdout.split()
    assert lines[:1] == ["wrote"] and lines[1] != PROC_SUPER_MAGIC, describe(p)

    for with_volume in (False, True):
        b.process["apparmorProfile"] = "docker-default"
        if with_volume:
            b.bind(fake, "/proc")
        side.save(b)
        r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
        assert refused(r) and "$.process.apparmorProfile" in r.stderr, (
            f"a requested AppArmor profile was not refused (volume over /proc: {with_volume}):\n{r}")


def test_exec_label_not_silently_dropped(side: Side) -> None:
    """Every way `exec` asks for a label must fail here, as create does."""
    b = side.bundle(["sleep", "30"])
    side.save(b)
    # The unprotected path: the label write fails and a runtime that ignores
    # the failure runs the process unconfined.
    p = side.naive('echo "exec docker-default" > /proc/self/attr/exec 2>/dev/null || echo unapplied; '
                   'echo ran')
    assert "unapplied" in p.stdout and "ran" in p.stdout, describe(p)

    cid = side.oci.cid()
    side.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    accepted = []
    try:
        asks: list[tuple[list[str], list[str]]] = [
            (["--apparmor", "docker-default"], ["true"]),
            (["--process-label", "system_u:system_r:container_t:s0"], ["true"])]
        for key, value in (("apparmorProfile", "docker-default"),
                           ("selinuxLabel", "system_u:system_r:container_t:s0")):
            f = side.workdir(f"proc-{key}") / "process.json"
            f.write_text(json.dumps({**b.process, "args": ["true"], key: value}))
            side.chown(f)
            asks.append((["--process", str(f)], []))
        for flags, command in asks:
            r = side.pyoci("exec", *flags, cid, *command)
            if not refused(r):
                accepted.append(f"exec {' '.join(flags)}: {r}")
    finally:
        side.pyoci("delete", "--force", cid).ok()
    assert not accepted, "a label `exec` asked for was silently dropped:\n" + "\n".join(accepted)


@pytest.mark.parametrize("dest", ["/proc/self/cwd", "/proc/self/root/HOSTDIR", "/proc/self/fd/1"])
def test_mount_destination_through_proc_magic_links(side: Side, dest: str) -> None:
    hostdir = side.workdir("hostdir")
    (hostdir / "HOST-MARKER").write_text("host\n")
    side.chown(hostdir / "HOST-MARKER")
    src = side.workdir("src")
    (src / "SRC-MARKER").write_text("src\n")
    side.chown(src / "SRC-MARKER")
    hostfile = side.workdir("out") / "stdout"
    hostfile.write_text("HOST-FILE\n")
    side.chown(hostfile)
    source = src if not dest.endswith("/fd/1") else src / "SRC-MARKER"
    dest = dest.replace("/HOSTDIR", str(hostdir))
    b = side.bundle(["true"])

    # The unprotected path: mount(2) follows the magic link of the process
    # that mounts (its cwd is the host directory, its stdout the host file).
    p = side.naive(f'cd "$HOST" && exec >>"$OUT" && mount --bind "$SRC" "$ROOTFS{dest}" && '
                   'ls "$HOST" >&2 && cat "$OUT" >&2',
                   mount_proc=str(b.rootfs / "proc"),
                   env={"HOST": str(hostdir), "SRC": str(source), "ROOTFS": str(b.rootfs),
                        "OUT": str(hostfile)})
    covered = "src" in p.stderr.splitlines() if dest.endswith("/fd/1") else "SRC-MARKER" in p.stderr
    assert p.returncode == 0 and covered, describe(p)

    b.bind(source, dest)
    hook, hook_out = mountinfo_hook(side)
    b.config["hooks"] = {"createRuntime": [hook]}
    side.save(b)
    cid = side.oci.cid()
    r = side.pyoci("create", "--bundle", str(b.path), cid, cwd=hostdir, stdout=hostfile)
    if r.rc != 0:
        assert refused(r), str(r)
        return
    try:
        pid = side.pyoci("state", cid).ok().json()["pid"]
        container, host = hook_mountinfo(hook_out, pid)
    finally:
        side.pyoci("delete", "--force", cid).ok()
    outside = mounts_outside(container, host, b.rootfs, side.oci.tmp)
    assert not outside, f"{dest}: the mount left the rootfs:\n" + "\n".join(outside)
