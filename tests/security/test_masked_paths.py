"""Masked and read-only paths: what they hide must stay hidden whatever the
image does (CVE-2025-31133: an image-supplied /dev/null, a regular file or a
symlink, becomes what is bound over the masked paths; an image whose
/dev/null is missing made runc skip masking), and /proc's dangerous files
must stay unreadable (/proc/kcore, /proc/timer_list, ...) and unwritable
(/proc/sysrq-trigger, /proc/sys, ...).

Nothing here writes to a procfs file: "writable" is checked by open(2)
O_WRONLY (no O_CREAT, no O_TRUNC) followed by close, by probe.c.  This
machine's kernel has neither /proc/kcore (CONFIG_PROC_KCORE) nor
/proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ): those two tests skip, saying so,
and the same checks run on the masked and read-only files it has.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from helpers.ocitest import Bundle
from helpers.secutil import Side, describe, host_mounts_under, install, refused, start_swapper, stop

MASKED_FILES = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                "/proc/latency_stats", "/proc/timer_stats"]
MASKED_DIRS = ["/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware"]
READONLY_FILES = ["/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern", "/proc/irq/default_smp_affinity"]


def present(paths: list[str]) -> list[str]:
    return [p for p in paths if os.path.exists(p)]


def check_script(masked: list[str], dirs: list[str], readonly: list[str]) -> str:
    """Inside the container: one line per masked file (type, device, bytes
    readable), per masked directory (entries), per read-only file (open for
    writing: errno)."""
    lines = [f'echo "M {p} $(stat -c %F:%t:%T {p} 2>&1 | tr " " _) $(head -c 64 {p} 2>/dev/null | wc -c)"'
             for p in masked]
    lines += [f'echo "D {p} $(ls -A {p} 2>/dev/null | wc -l)"' for p in dirs]
    if readonly:
        lines.append("/bin/probe openw " + " ".join(readonly) + " | sed 's/^/W /'")
        lines += [f'echo "S {p} $(stat -c %F:%t:%T {p} 2>&1 | tr " " _)"' for p in readonly]
    lines.append("echo END")
    return "\n".join(lines)


def check_problems(out: str, side: Side, masked: list[str], dirs: list[str],
                   readonly: list[str]) -> list[str]:
    problems = []
    if "END" not in out:
        return [f"the check did not complete: {out!r}"]
    seen = {ln.split()[1]: ln.split()[2:] for ln in out.splitlines() if ln[:2] in ("M ", "D ", "W ")}
    kinds = {ln.split()[1]: ln.split()[2] for ln in out.splitlines() if ln.startswith("S ")}
    for p in masked:
        kind, nbytes = seen[p]
        if kind != "character_special_file:1:3" or nbytes != "0":
            problems.append(f"masked {p} is {kind} with {nbytes} bytes readable (want the null device)")
    for p in dirs:
        if seen[p] != ["0"]:
            problems.append(f"masked directory {p} shows {seen[p][0]} entries")
    # A read-only bind gives EROFS; a rootless container may be refused
    # earlier by permissions (EACCES), which says nothing of the mount.
    allowed = {f"errno={errno.EROFS}"} | ({f"errno={errno.EACCES}"} if side.rootless else set())
    for p in readonly:
        # the null device bound over it (by a symlinked /dev/null) swallows writes: harmless
        if seen[p][0] not in allowed and kinds.get(p) != "character_special_file:1:3":
            problems.append(f"read-only {p} ({kinds.get(p)}): open for writing gave {seen[p][0]}")
    return problems


def naive_proc(side: Side, script: str, probe: Path | None = None) -> str:
    """The unprotected path: a fresh procfs in new pid and mount namespaces, no masks."""
    p = side.naive(script, env={"PROBE": str(probe or "")})
    return p.stdout


@pytest.mark.skipif(not os.path.exists("/proc/kcore"),
                    reason="this kernel has no /proc/kcore (CONFIG_PROC_KCORE is not set)")
def test_proc_kcore_unreadable(side: Side, probe: Path) -> None:
    out = naive_proc(side, "head -c 4 /proc/kcore | od -c | head -1")
    if not side.rootless:
        assert "E   L   F" in out, out
    b = side.bundle(["sh", "-c", check_script(["/proc/kcore"], [], [])])
    install(probe, b.rootfs)
    side.save(b)
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert r.rc == 0, str(r)
    assert not check_problems(r.stdout, side, ["/proc/kcore"], [], []), str(r)


@pytest.mark.skipif(not os.path.exists("/proc/sysrq-trigger"),
                    reason="this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ is not set)")
def test_proc_sysrq_trigger_unwritable(side: Side, probe: Path) -> None:
    out = naive_proc(side, '"$PROBE" openw /proc/sysrq-trigger', probe)
    if not side.rootless:
        assert "/proc/sysrq-trigger ok" in out, out
    b = side.bundle(["sh", "-c", check_script([], [], ["/proc/sysrq-trigger"])])
    install(probe, b.rootfs)
    side.save(b)
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert r.rc == 0, str(r)
    assert not check_problems(r.stdout, side, [], [], ["/proc/sysrq-trigger"]), str(r)


def test_masked_and_readonly_proc_files(side: Side, probe: Path) -> None:
    masked, dirs, readonly = present(MASKED_FILES), present(MASKED_DIRS), present(READONLY_FILES)
    # the unprotected path reads what the masks hide and may open what they protect
    naive = naive_proc(side, check_script(masked, dirs, readonly).replace("/bin/probe", '"$PROBE"'), probe)
    readable = [ln for ln in naive.splitlines()
                if (ln.startswith("M ") and ln.split()[-1] != "0")
                or (ln.startswith("D ") and ln.split()[-1] != "0")]
    writable = [ln for ln in naive.splitlines() if ln.startswith("W ") and ln.endswith(" ok")]
    assert readable, naive
    if not side.rootless:
        assert writable, naive

    b = side.bundle(["sh", "-c", check_script(masked, dirs, readonly)])
    install(probe, b.rootfs)
    side.save(b)
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert r.rc == 0, str(r)
    problems = check_problems(r.stdout, side, masked, dirs, readonly)
    assert not problems, "\n".join(problems) + f"\n{r}"


def test_masked_path_symlinks(side: Side) -> None:
    """A masked path that is a symlink: in the image (its target must be
    hidden) or towards a host file (which must stay untouched)."""
    host = side.workdir("host")
    secret = host / "secret"
    secret.write_text("HOST-SECRET\n")
    side.chown(secret)
    b = side.bundle(["sh", "-c", "cat /etc/link /etc/real /etc/hostabs /etc/hostrel 2>&1; echo END"])
    etc = b.rootfs / "etc"
    (etc / "real").write_text("IMAGE-SECRET\n")
    os.symlink("/etc/real", etc / "link")
    os.symlink(str(secret), etc / "hostabs")
    os.symlink("../" * 12 + str(secret).lstrip("/"), etc / "hostrel")
    b.linux["maskedPaths"] += ["/etc/link", "/etc/hostabs", "/etc/hostrel"]
    side.save(b)

    # the unprotected path: binding the null device by path follows the symlink to the host file
    p = side.naive('mount --bind /dev/null "$ROOTFS/etc/hostabs" && cat "$SECRET" && echo MASKED-HOST',
                   pid=False, env={"ROOTFS": str(b.rootfs), "SECRET": str(secret)})
    assert "MASKED-HOST" in p.stdout and "HOST-SECRET" not in p.stdout, describe(p)

    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert r.rc == 0 and "END" in r.stdout, str(r)
    assert "IMAGE-SECRET" not in r.stdout, f"the masked symlink's target is readable:\n{r}"
    assert "HOST-SECRET" not in r.stdout, str(r)
    assert secret.read_text() == "HOST-SECRET\n" and not host_mounts_under(host)


def _without_dev_mounts(b: Bundle) -> None:
    b.config["mounts"] = [m for m in b.config["mounts"] if not m["destination"].startswith("/dev")]


def _plant_dev_null(b: Bundle, kind: str, hostfile: Path) -> None:
    null = b.rootfs / "dev" / "null"
    if kind == "regular-file":
        null.write_text("NOT-THE-NULL-DEVICE\n")
    elif kind == "symlink-core-pattern":
        os.symlink("/proc/sys/kernel/core_pattern", null)
    elif kind == "symlink-host-file":
        os.symlink(str(hostfile), null)
    elif kind == "directory":
        null.mkdir()
        (null / "x").write_text("x\n")
    else:
        assert kind == "missing"


DEV_NULL_KINDS = ["regular-file", "symlink-core-pattern", "symlink-host-file", "directory", "missing"]


@pytest.mark.parametrize("kind", DEV_NULL_KINDS)
def test_image_supplied_dev_null(side: Side, probe: Path, kind: str) -> None:
    masked, dirs, readonly = present(MASKED_FILES), present(MASKED_DIRS), present(READONLY_FILES)
    hostfile = side.workdir("host") / "file"
    hostfile.write_text("HOST-FILE\n")
    side.chown(hostfile)
    b = side.bundle(["sh", "-c", "echo /dev/null $(stat -L -c %F:%t:%T /dev/null | tr ' ' _)\n"
                     + check_script(masked, dirs, readonly)])
    _without_dev_mounts(b)
    install(probe, b.rootfs)
    _plant_dev_null(b, kind, hostfile)
    side.save(b)

    # The unprotected path: mask by binding the image's "/dev/null" by path
    # over a sensitive file (and skip the mask when that fails).
    sensitive = side.workdir("naive") / "sensitive"
    sensitive.write_text("SENSITIVE\n")
    side.chown(sensitive)
    p = side.naive('mount --bind "$ROOTFS/dev/null" "$TARGET" 2>/dev/null; cat "$TARGET"', pid=False,
                   env={"ROOTFS": str(b.rootfs), "TARGET": str(sensitive)})
    assert p.stdout.strip(), f"the naive mask hid the file:\n{describe(p)}"

    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    if r.rc != 0:
        assert refused(r) and "END" not in r.stdout, str(r)
        return
    problems = check_problems(r.stdout, side, masked, dirs, readonly)
    if "/dev/null character_special_file:1:3" not in r.stdout:
        problems.append("/dev/null in the container is not the null device")
    assert not problems, "\n".join(problems) + f"\n{r}"
    assert hostfile.read_text() == "HOST-FILE\n"


def test_dev_null_raced(side: Side, probe: Path) -> None:
    """A racing process keeps exchanging the image's /dev/null with a symlink
    to /proc/sys/kernel/core_pattern while pyoci creates the devices and
    masks: every run either fails cleanly or masks with the null device."""
    masked, dirs, readonly = present(MASKED_FILES), present(MASKED_DIRS), present(READONLY_FILES)
    b = side.bundle(["sh", "-c", check_script(masked, dirs, readonly)])
    _without_dev_mounts(b)
    install(probe, b.rootfs)
    os.symlink("/proc/sys/kernel/core_pattern", b.rootfs / "dev" / "evil")
    (b.rootfs / "dev" / "null").write_text("NOT-THE-NULL-DEVICE\n")
    side.save(b)
    swapper = start_swapper(b.rootfs / "dev" / "null", b.rootfs / "dev" / "evil", 60)
    problems, ran = [], 0
    try:
        for _ in range(8):
            r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
            if r.rc != 0:
                if not refused(r) or "END" in r.stdout:
                    problems.append(f"failed untidily:\n{r}")
                continue
            ran += 1
            problems += check_problems(r.stdout, side, masked, dirs, readonly)
    finally:
        stop(swapper)
    assert not problems, "\n".join(problems)
    assert ran > 0, "no run succeeded while the swapper ran: nothing was checked"
