"""Hostile and unlucky input through the real binary (issue 12 items 8, 11, 12):
each case ends in one clear `pyoci: ...` line naming the file, field or flag,
exit status 1 (2 for a bad flag), quickly, and leaves nothing (the ``oci``
fixture's leak check: no state directory, mount or process)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from helpers.ocitest import Env, Result, pid_alive


def one_line(r: Result, *needles: str, rc: int = 1) -> str:
    lines = r.err_lines
    assert r.rc == rc and len(lines) == 1 and lines[0].startswith("pyoci: "), str(r)
    assert "internal error" not in lines[0] and "please report" not in lines[0], str(r)
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


# -- config.json that is not a small regular file ---------------------------------------


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "huge"])
def test_config_json_not_a_small_regular_file(oci: Env, kind: str) -> None:
    b = oci.bundle(["true"])
    cfg = b.path / "config.json"
    cfg.unlink()
    if kind == "dev-zero":
        cfg.symlink_to("/dev/zero")
        expect = "a character device, not a regular file"
    elif kind == "fifo":
        os.mkfifo(cfg)
        expect = "a FIFO, not a regular file"
    elif kind == "directory":
        cfg.mkdir()
        expect = "a directory, not a regular file"
    else:
        with open(cfg, "wb") as f:
            f.truncate(1 << 30)     # 1 GiB, sparse
        expect = "larger than pyoci's limit of 16 MiB"
    t0 = time.monotonic()
    r = oci.pyoci("create", "--bundle", str(b.path), oci.cid(), timeout=20)
    one_line(r, expect, str(cfg))
    assert time.monotonic() - t0 < 10


def test_update_resources_stdin_is_bounded(oci: Env) -> None:
    b = oci.bundle(["sleep", "100"])
    cid = oci.cid()
    oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    try:
        r = oci.pyoci("update", "--resources", "-", cid, stdin=b" " * (17 << 20))
        one_line(r, "resources", "standard input", "larger than pyoci's limit of 16 MiB")
        fifo = oci.path("res.fifo")
        os.mkfifo(fifo)
        r = oci.pyoci("update", "--resources", str(fifo), cid, timeout=20)
        one_line(r, str(fifo), "a FIFO, not a regular file")
    finally:
        oci.pyoci("delete", "--force", cid).ok()


# -- NUL and lone surrogates -------------------------------------------------------------


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
@pytest.mark.parametrize("where", ["maskedPaths", "cgroupsPath", "env", "mount-options", "hook-path"])
def test_bad_strings_refused(oci: Env, where: str, bad: str) -> None:
    b = oci.bundle(["true"])
    if where == "maskedPaths":
        b.linux["maskedPaths"] = ["/etc/passwd" + bad + "xyz"]
        field = "$.linux.maskedPaths[0]"
    elif where == "cgroupsPath":
        b.linux["cgroupsPath"] = f"/fz-{oci.token[:8]}" + bad + "x"
        field = "$.linux.cgroupsPath"
    elif where == "env":
        b.process["env"].append("A=" + bad)
        field = f"$.process.env[{len(b.process['env']) - 1}]"
    elif where == "mount-options":
        b.config["mounts"][0]["options"] = ["nosuid" + bad]
        field = "$.mounts[0].options[0]"
    else:
        b.config["hooks"] = {"createRuntime": [{"path": "/bin/true" + bad + "/x"}]}
        field = "$.hooks.createRuntime[0].path"
    b.save()
    r = oci.pyoci("run", "--bundle", str(b.path), oci.cid())
    one_line(r, field, "NUL" if bad == "\x00" else "lone surrogate")


# -- numbers that used to overflow C ----------------------------------------------------


@pytest.mark.parametrize(("field", "put"), [
    ("$.process.consoleSize.height", lambda b: b.process.__setitem__("consoleSize", {"height": 70000,
                                                                                    "width": 1})),
    ("$.linux.devices[0].major", lambda b: b.linux.__setitem__(
        "devices", [{"path": "/dev/x", "type": "c", "major": -1, "minor": 1}])),
    ("$.linux.devices[0].minor", lambda b: b.linux.__setitem__(
        "devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 2**40}])),
    ("$.process.user.umask", lambda b: b.process["user"].__setitem__("umask", 4294967295)),
])
def test_numbers_refused_with_range(oci: Env, field: str, put: object) -> None:
    b = oci.bundle(["true"])
    put(b)  # type: ignore[operator]
    b.save()
    r = oci.pyoci("run", "--bundle", str(b.path), oci.cid())
    one_line(r, field, "must be")


def _has_memory_cgroup() -> bool:
    if os.path.isdir("/sys/fs/cgroup/memory"):
        return True
    try:
        return "memory" in Path("/sys/fs/cgroup/cgroup.controllers").read_text().split()
    except OSError:
        return False


def test_memory_limit_too_low_says_what_the_kernel_did(oci: Env) -> None:
    if not _has_memory_cgroup():
        pytest.skip("no memory cgroup controller on this host")
    b = oci.bundle(["true"])
    b.linux.setdefault("resources", {})["memory"] = {"limit": 1}
    b.save()
    r = oci.pyoci("run", "--bundle", str(b.path), oci.cid())
    line = one_line(r, "$.linux.resources.memory.limit 1")
    assert "OOM killer" in line or "memory" in line, line
    assert "without a report" not in line


# -- exec flags ------------------------------------------------------------------------


def _running(argv: list[bytes]) -> list[int]:
    want = b"\0".join(argv) + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if f.read() == want:
                        found.append(int(name))
            except OSError:
                pass
    return found


def test_exec_bad_flags(oci: Env) -> None:
    b = oci.bundle(["sleep", "100"])
    cid = oci.cid()
    oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    try:
        r = oci.pyoci("exec", "--pid-file", "/nonexistent/dir/f", cid, "sleep", "777")
        # (exec's own failures exit 255, as runc's)
        one_line(r, "--pid-file /nonexistent/dir/f", "No such file or directory", rc=255)
        assert not [p for p in _running([b"sleep", b"777"]) if pid_alive(p)]
        # An argument that is not UTF-8 reaches the process as its bytes (as with runc).
        out = oci.path("exec.out")
        oci.pyoci("exec", cid, "echo", os.fsdecode(b"\xff\xfe"), stdout=out).ok()
        assert out.read_bytes() == b"\xff\xfe\n"
        r = oci.pyoci("exec", "--console-socket", os.fsdecode(b"/nonexistent/\xff"), "-t", cid, "true")
        one_line(r, "connect to the console socket", rc=255)
        for n in ("-5", "99999999999"):
            r = oci.pyoci("exec", "--preserve-fds", n, cid, "true")
            one_line(r, f"--preserve-fds {n}", rc=255)
    finally:
        oci.pyoci("delete", "--force", cid).ok()


# -- a read-only state directory -----------------------------------------------------------


def test_read_only_root_during_start_and_delete(oci: Env) -> None:
    b = oci.bundle(["sleep", "100"])
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    root = str(oci.root)
    made = subprocess.run(["mount", "--bind", root, root], capture_output=True)
    if made.returncode != 0:
        oci.pyoci("delete", "--force", cid).ok()
        pytest.skip(f"cannot bind-mount the state dir: {made.stderr!r}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", root, root], check=True, capture_output=True)
        r = oci.pyoci("start", cid)
        one_line(r, "Read-only file system", f"{root}/{cid}/")
        assert oci.state(cid)["status"] == "created"
        r = oci.pyoci("delete", "--force", cid)
        one_line(r, "Read-only file system", f"{root}/{cid}/")
    finally:
        subprocess.run(["umount", root], check=True)
    oci.pyoci("delete", "--force", cid).ok()


def test_create_pid_file_in_missing_dir(oci: Env) -> None:
    b = oci.bundle(["sleep", "100"])
    r = oci.pyoci("create", "--pid-file", "/nonexistent/dir/f", "--bundle", str(b.path), oci.cid())
    one_line(r, "write --pid-file /nonexistent/dir/f", "No such file or directory")
