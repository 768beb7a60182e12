"""Hardening (issue 6), each checked on real containers.

* Binary protection: the container's processes run pyoci-init, a static
  program in a sealed, exec-only memfd, until the final execve; never the
  host's interpreter or another host file.  A `#!/proc/self/exe` script
  reaches only that sealed copy.  Credentials after the (single) execve are
  the kernel's usual ones.
* No leaks: only fds 0-2 and --preserve-fds, exactly process.env, a working
  directory inside the root.
* Masked and read-only paths are checked after mounting; sysctls are written
  only to procfs.
* linux.personality, process.ioPriority, process.scheduler,
  linux.memoryPolicy applied, or refused with the field and errno.
* A new session keyring per container (and per exec'd process).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import Bundle, Env, HostUser, caps_mask, status_fields, wait_for
from helpers.users import Rootless

F_GET_SEALS = 1034
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8
SELF_EXE_SCRIPT = "#!/proc/self/exe\necho the script body ran\n"


def _init_pid(oci: Env, cid: str) -> int:
    pid: int = oci.state(cid)["pid"]
    return pid


def _stat_fields(pid: int | str) -> list[str]:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data[data.rindex(")") + 2:].split()


# -- binary and interpreter protection ------------------------------------------------


def test_created_init_runs_a_sealed_memfd_not_a_host_file(oci: Env) -> None:
    b = oci.bundle(["true"])
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    pid = _init_pid(oci, cid)
    assert os.readlink(f"/proc/{pid}/exe") == "/memfd:pyoci-init (deleted)"
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        assert st.st_mode & 0o777 == 0o111, oct(st.st_mode)
        seals = fcntl.fcntl(fd, F_GET_SEALS)
        want = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
        assert seals & want == want, hex(seals)
        python = os.stat(os.path.realpath("/proc/self/exe"))
        assert (st.st_dev, st.st_ino) != (python.st_dev, python.st_ino)
    finally:
        os.close(fd)
    # no mapping of the interpreter or of pyoci's extension either
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "python" not in maps and "_helper" not in maps, maps
    # even root, with every capability, cannot change it: it is busy (being
    # run), and once it is not, it is still sealed
    with pytest.raises(OSError) as busy:
        os.open(f"/proc/{pid}/exe", os.O_WRONLY | os.O_CLOEXEC)
    assert busy.value.errno == errno.ETXTBSY
    fd = os.open(f"/proc/{pid}/exe", os.O_PATH | os.O_CLOEXEC)
    oci.pyoci("delete", "--force", cid).ok()
    try:
        wfd = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            with pytest.raises(PermissionError):
                os.write(wfd, b"\x7fELF")
        finally:
            os.close(wfd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("userns", [False, True], ids=["no-userns", "userns"])
def test_created_init_is_out_of_reach_from_inside(oci: Env, userns: bool) -> None:
    """The waiting init is non-dumpable, and its mm belongs to the runtime's
    user namespace: another process of the container (here one started by
    exec, even as root with CAP_SYS_PTRACE in a user namespace of its own)
    can neither open its exe, environ or fds nor ptrace it."""
    b = oci.bundle(["true"])
    if userns:
        b.set_namespace("user")
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65536}]
        b.linux["gidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65536}]
        b.chown_all(300000, 300000)
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    pid = _init_pid(oci, cid)
    if userns:
        # non-dumpable: its /proc files belong to the host's root, not to its uid
        assert status_fields(Path(f"/proc/{pid}/status").read_text())["Uid"].split()[0] == "300000"
        assert os.stat(f"/proc/{pid}/environ").st_uid == 0
    script = ("for f in exe environ cwd root fd/0 fd/3; do readlink /proc/1/$f >/dev/null 2>&1 && "
              "echo open $f; done; cat /proc/1/environ >/dev/null 2>&1 && echo read environ; echo done")
    args = ["exec", "--cap", "CAP_SYS_PTRACE"] if userns else ["exec"]
    r = oci.pyoci(*args, cid, "sh", "-c", script)
    oci.pyoci("delete", "--force", cid).ok()
    assert r.rc == 0 and r.stdout == "done\n", str(r)


@pytest.mark.parametrize("how", ["run", "exec"])
def test_self_exe_script_reaches_only_the_sealed_copy(oci: Env, how: str) -> None:
    """CVE-2019-5736: a program whose interpreter is /proc/self/exe makes the
    kernel run the exe of the process calling execve.  That is pyoci-init's
    sealed memfd, which refuses to run and exits 127."""
    b = oci.bundle(["sleep", "1000"] if how == "exec" else ["/evil"])
    (b.rootfs / "evil").write_text(SELF_EXE_SCRIPT)
    os.chmod(b.rootfs / "evil", 0o755)
    b.save()
    if how == "run":
        r = oci.run(b)
    else:
        cid = oci.cid()
        oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
        r = oci.pyoci("exec", cid, "/evil")
        oci.pyoci("delete", "--force", cid).ok()
    assert r.rc == 127, str(r)
    assert "pyoci-init: not started by pyoci" in r.stderr, str(r)
    assert "the script body ran" not in r.stdout


def test_exe_argv0_and_comm_are_the_programs(oci: Env) -> None:
    script = "readlink /proc/$$/exe; cat /proc/$$/comm; tr '\\0' ' ' </proc/$$/cmdline; echo"
    b = oci.bundle(["sh", "-c", script])
    r = oci.run(b).ok()
    assert r.stdout.splitlines() == ["/bin/busybox", "sh", f"sh -c {script} "], r.stdout
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.set_args("sleep", "1000").save().path), cid).ok()
    r = oci.pyoci("exec", cid, "sh", "-c", script).ok()
    assert r.stdout.splitlines() == ["/bin/busybox", "sh", f"sh -c {script} "], r.stdout
    oci.pyoci("delete", "--force", cid).ok()


def _caps(b: Bundle, names: list[str], ambient: bool) -> None:
    b.process["capabilities"] = {k: list(names) for k in ("bounding", "effective", "permitted",
                                                           "inheritable")}
    b.process["capabilities"]["ambient"] = list(names) if ambient else []


def _vfs_cap(permitted: int) -> bytes:
    """security.capability, VFS_CAP_REVISION_2 with the effective bit."""
    return struct.pack("<IIIII", 0x02000000 | 1, permitted & 0xFFFFFFFF, 0, permitted >> 32, 0)


NBS = caps_mask(["CAP_NET_BIND_SERVICE"])


@pytest.mark.parametrize("case", ["root", "user-ambient", "user-no-ambient", "user-nnp-file-caps",
                                  "root-nnp"])
def test_credentials_are_those_of_one_execve(oci: Env, case: str) -> None:
    """What the kernel computes at one execve from the credentials the spec
    asks for.  user-nnp-file-caps is the case a trampoline executed between
    the credential change and the program gets wrong (runc-dmz, runc issue
    4125): with no_new_privs, a file capability is kept only if it was in
    the permitted set before the execve."""
    b = oci.bundle(["sh", "-c", "grep -E '^(Cap|NoNewPrivs|Uid|Gid)' /proc/self/status"])
    _caps(b, ["CAP_NET_BIND_SERVICE"], ambient=(case == "user-ambient"))
    b.process["noNewPrivileges"] = "nnp" in case
    if case.startswith("user"):
        b.process["user"] = {"uid": 1000, "gid": 1000}
    if case == "user-nnp-file-caps":
        capbin = b.rootfs / "capbin"
        capbin.mkdir()
        shutil.copy2(b.rootfs / "bin" / "busybox", capbin / "sh")
        os.setxattr(capbin / "sh", "security.capability", _vfs_cap(NBS))
        b.set_args("/capbin/sh", "-c", "grep -E '^(Cap|NoNewPrivs|Uid|Gid)' /proc/self/status")
    r = oci.run(b).ok()
    got = status_fields(r.stdout)
    want = {
        # root: permitted = bounding, effective = permitted
        "root": (NBS, NBS, NBS, 0),
        "root-nnp": (NBS, NBS, NBS, 0),
        # not root: what is ambient
        "user-ambient": (NBS, NBS, NBS, NBS),
        "user-no-ambient": (NBS, 0, 0, 0),
        # the file's capability, kept because it was permitted before
        "user-nnp-file-caps": (NBS, NBS, NBS, 0),
    }[case]
    have = tuple(int(got[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"))
    assert have == want, r.stdout
    assert int(got["CapBnd"], 16) == NBS
    assert got["NoNewPrivs"] == ("1" if "nnp" in case else "0")
    uid = "1000" if case.startswith("user") else "0"
    assert got["Uid"].split() == [uid] * 4 and got["Gid"].split() == [uid] * 4


@pytest.mark.parametrize("nnp", [False, True], ids=["without-no-new-privs", "with-no-new-privs"])
def test_seccomp_filters_only_the_programs_execve(oci: Env, nnp: bool) -> None:
    """pyoci-init is exec'd before any filter exists: a profile that denies
    execveat changes nothing for the container, one that denies execve stops
    exactly the program's execve."""
    b = oci.bundle(["true"])
    b.process["noNewPrivileges"] = nnp
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]}
    oci.run(b).ok()
    b.linux["seccomp"]["syscalls"][0]["names"] = ["execve"]
    r = oci.run(b)
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    assert "$.process.args" in r.stderr and "Operation not permitted" in r.stderr, str(r)


# -- no leaks into the container -------------------------------------------------------


@pytest.fixture
def host_dir_fd(oci: Env) -> Iterator[Path]:
    d = oci.mkdir("outside")
    (d / "host-secret").write_text("x")
    yield d


def _with_fd3(oci: Env, directory: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The CLI with fd 3 open on directory; stdout and stderr in the result
    (through files: a container started by create keeps them open)."""
    cmd, env = oci.command(args)
    out, err = oci.path("fd3.out"), oci.path("fd3.err")
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.run(["sh", "-c", f'exec "$@" 3<{directory}', "sh", *cmd], stdin=subprocess.DEVNULL,
                           stdout=fo, stderr=fe, env=env, timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, out.read_bytes(), err.read_bytes())


@pytest.mark.parametrize("how", ["run", "exec"])
def test_cwd_outside_the_root_is_refused(oci: Env, host_dir_fd: Path, how: str) -> None:
    """CVE-2024-21626: a working directory reached through /proc/self/fd/N
    (here a directory fd passed with --preserve-fds) lies outside the root."""
    b = oci.bundle(["sh", "-c", "ls; pwd"])
    if how == "run":
        b.process["cwd"] = "/proc/self/fd/3"
        b.save()
        p = _with_fd3(oci, host_dir_fd, "run", "--preserve-fds", "1", "--bundle", str(b.path), oci.cid())
    else:
        cid = oci.cid()
        oci.pyoci("run", "--detach", "--bundle", str(b.set_args("sleep", "1000").save().path), cid).ok()
        p = _with_fd3(oci, host_dir_fd, "exec", "--preserve-fds", "1", "--cwd", "/proc/self/fd/3", cid,
                      "sh", "-c", "ls; pwd")
        oci.pyoci("delete", "--force", cid).ok()
    err = p.stderr.decode()
    assert p.returncode != 0, err
    assert b"host-secret" not in p.stdout
    assert "$.process.cwd" in err and "outside the container's root" in err, err
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize("how", ["create", "exec"])
def test_only_stdio_and_preserved_fds_reach_the_program(oci: Env, host_dir_fd: Path, how: str) -> None:
    """fd 3 is the caller's, fd 4 was not open in the caller: the container
    gets /dev/null there, never one of pyoci's own fds, and nothing else."""
    b = oci.bundle(["sleep", "1000"])
    cid = oci.cid()
    pidfile = oci.path("exec.pid")
    if how == "create":
        p = _with_fd3(oci, host_dir_fd, "create", "--preserve-fds", "2", "--bundle", str(b.path), cid)
        assert p.returncode == 0, p.stderr.decode()
        oci.pyoci("start", cid).ok()
        pid = _init_pid(oci, cid)
    else:
        oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
        p = _with_fd3(oci, host_dir_fd, "exec", "--detach", "--pid-file", str(pidfile), "--preserve-fds", "2",
                      cid, "sleep", "1000")
        assert p.returncode == 0, p.stderr.decode()
        pid = int(pidfile.read_text())
    try:
        wait_for(lambda: Path(f"/proc/{pid}/comm").read_text().strip() == "sleep", what="exec sleep")
        assert sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2, 3, 4]
        assert os.readlink(f"/proc/{pid}/fd/3") == str(host_dir_fd)
        assert os.readlink(f"/proc/{pid}/fd/4") == "/dev/null"
    finally:
        oci.pyoci("delete", "--force", cid).ok()


def test_fd_the_caller_left_closed_is_dev_null(oci: Env) -> None:
    b = oci.bundle(["sh", "-c", "readlink /proc/$$/fd/3; readlink /proc/$$/fd/4"])
    r = oci.pyoci("run", "--preserve-fds", "2", "--bundle", str(b.path), oci.cid()).ok()
    assert r.stdout.split() == ["/dev/null", "/dev/null"], r.stdout


def test_environment_is_exactly_process_env(oci: Env) -> None:
    b = oci.bundle(["env"])
    b.process["env"] = ["PATH=/bin", "ONE=1", "EMPTY="]
    r = oci.run(b, env={"PYOCI_SECRET_OF_THE_HOST": "leak"}).ok()
    # plus HOME, which runc (and pyoci) add from the image's /etc/passwd when env has none
    assert sorted(r.stdout.splitlines()) == ["EMPTY=", "HOME=/root", "ONE=1", "PATH=/bin"], r.stdout
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.set_args("sleep", "1000").save().path), cid).ok()
    r = oci.pyoci("exec", "--env", "TWO=2", cid, "env", env={"PYOCI_SECRET_OF_THE_HOST": "leak"}).ok()
    assert sorted(r.stdout.splitlines()) == ["EMPTY=", "HOME=/root", "ONE=1", "PATH=/bin", "TWO=2"], r.stdout
    oci.pyoci("delete", "--force", cid).ok()


# -- masked and read-only paths ---------------------------------------------------------


def test_masks_use_the_runtimes_null_device(oci: Env) -> None:
    """/dev bound from the bundle, whose "null" is a regular file: masked
    files are still covered with the real null device, checked after
    mounting; a masked directory is an empty read-only tmpfs."""
    b = oci.bundle(["sh", "-c", "stat -c '%F %t:%T' /proc/timer_list; stat -c %s /proc/timer_list; "
                                "stat -f -c %T /proc/irq; ls -A /proc/irq | wc -l; "
                                "touch /proc/irq/x 2>&1 | grep -q Read-only && echo read-only"])
    dev = oci.mkdir("dev")
    (dev / "null").write_text("not a device\n")
    b.config["mounts"] = [m for m in b.config["mounts"] if not m["destination"].startswith("/dev")]
    b.bind(dev, "/dev")
    b.linux["maskedPaths"] = ["/proc/timer_list", "/proc/irq"]
    b.linux.pop("readonlyPaths", None)
    b.save()
    r = oci.run(b).ok()
    lines = r.stdout.splitlines()
    assert lines[0] == "character special file 1:3", r.stdout
    assert lines[1] == "0"
    assert lines[2] == "tmpfs", r.stdout
    assert lines[3:] == ["0", "read-only"], r.stdout
    assert (dev / "null").read_text() == "not a device\n"


def test_readonly_paths_are_read_only_all_the_way_down(oci: Env) -> None:
    b = oci.bundle(["sh", "-c", "grep -E ' /proc/sys | /proc/sys/fs/binfmt_misc ' /proc/self/mountinfo; "
                                "echo 1 > /proc/sys/kernel/printk 2>/dev/null || echo refused"])
    b.linux["readonlyPaths"] = ["/proc/sys"]
    r = oci.run(b).ok()
    lines = r.stdout.splitlines()
    assert lines[-1] == "refused", r.stdout
    for line in lines[:-1]:
        assert "ro" in line.split()[5].split(","), line


def test_sysctl_is_written_only_to_procfs(oci: Env) -> None:
    """No procfs at /proc in the container (a tmpfs instead, with a
    sys/kernel/shmmni file in the image): the sysctl is refused, not
    written into the file."""
    b = oci.bundle(["true"])
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/proc"]
    fake = b.rootfs / "proc" / "sys" / "kernel"
    fake.mkdir(parents=True)
    (fake / "shmmni").write_text("untouched")
    b.linux["sysctl"] = {"kernel.shmmni": "1234"}
    b.linux["maskedPaths"] = []
    b.linux["readonlyPaths"] = []
    r = oci.run(b)
    assert r.rc != 0, str(r)
    assert "$.linux.sysctl" in r.stderr and "is not on procfs" in r.stderr, str(r)
    assert (fake / "shmmni").read_text() == "untouched"


# -- personality, I/O priority, scheduler, memory policy --------------------------------


PROBE = ("cat /proc/self/personality; uname -m; ionice -p $$; "
         "awk '{print $19, $40, $41}' /proc/$$/stat; head -1 /proc/$$/numa_maps | cut -d' ' -f2")


def test_personality_io_priority_scheduler_memory_policy(oci: Env) -> None:
    b = oci.bundle(["sh", "-c", PROBE])
    b.linux["personality"] = {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}
    b.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    b.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 5}
    b.linux["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}
    r = oci.run(b).ok()
    assert r.stdout.splitlines() == ["00040008", "i686", "best-effort: prio 6", "5 0 3", "bind:0"], r.stdout
    # exec'd processes get the container's personality and memory policy,
    # and their own process's I/O priority and scheduler
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.set_args("sleep", "1000").save().path), cid).ok()
    proc = dict(b.process, args=["sh", "-c", PROBE], ioPriority={"class": "IOPRIO_CLASS_IDLE", "priority": 0},
                scheduler={"policy": "SCHED_IDLE"})
    pfile = oci.path("process.json")
    pfile.write_text(__import__("json").dumps(proc))
    r = oci.pyoci("exec", "--process", str(pfile), cid).ok()
    assert r.stdout.splitlines() == ["00040008", "i686", "idle", "0 0 5", "bind:0"], r.stdout
    oci.pyoci("delete", "--force", cid).ok()


def test_realtime_scheduler(oci: Env) -> None:
    """SCHED_FIFO needs real-time runtime in the container's cgroup (v1 cpu
    with RT group scheduling); without it the kernel's EPERM names the field."""
    b = oci.bundle(["sh", "-c", "awk '{print $40, $41}' /proc/$$/stat"])
    b.process["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
    r = oci.run(b)
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    assert "$.process.scheduler" in r.stderr and "Operation not permitted" in r.stderr, str(r)
    if not Path("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists():
        return
    b.linux["cgroupsPath"] = f"/pyoci-rt-{oci.token[:8]}"
    b.linux["resources"] = {"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 1000000}}
    r = oci.run(b).ok()
    assert r.stdout.split() == ["10", "1"], r.stdout


def test_io_priority_rt_needs_host_privilege(oci: Env) -> None:
    b = oci.bundle(["sh", "-c", "ionice -p $$"])
    b.process["ioPriority"] = {"class": "IOPRIO_CLASS_RT", "priority": 2}
    r = oci.run(b).ok()
    assert r.stdout.strip() == "realtime: prio 2"


def test_memory_policy_on_a_missing_node_is_refused(oci: Env) -> None:
    online = Path("/sys/devices/system/node/online").read_text().strip()
    if online != "0":
        pytest.skip(f"nodes {online} are online")
    b = oci.bundle(["true"])
    b.linux["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "1"}
    r = oci.run(b)
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    assert "$.linux.memoryPolicy" in r.stderr and "Invalid argument" in r.stderr, str(r)


def test_features_list_the_new_fields(oci: Env) -> None:
    f = oci.pyoci("features").ok().json()
    assert "MPOL_BIND" in f["linux"]["memoryPolicy"]["modes"]
    assert "MPOL_F_STATIC_NODES" in f["linux"]["memoryPolicy"]["flags"]
    ann = f["annotations"]
    assert "LINUX32" in ann["org.pyoci.linux.personality.domains"].split(",")
    assert "IOPRIO_CLASS_RT" in ann["org.pyoci.process.ioPriority.classes"].split(",")
    assert "SCHED_DEADLINE" in ann["org.pyoci.process.scheduler.policies"].split(",")


# -- session keyrings -------------------------------------------------------------------

KEYINFO_C = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void)
{
    char desc[512];
    long id = syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* SESSION */, 0);
    long n = syscall(SYS_keyctl, 6 /* DESCRIBE */, id, desc, sizeof desc);
    if (id < 0 || n < 0) { perror("keyctl"); return 1; }
    printf("%ld %s\n", id, desc);
    return 0;
}
"""


@pytest.fixture(scope="module")
def keyinfo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("gcc"):
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("keyinfo")
    (d / "keyinfo.c").write_text(KEYINFO_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "keyinfo"), str(d / "keyinfo.c")], check=True)
    return d / "keyinfo"


def _session_keyring_of_this_process() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    r = int(libc.syscall(250, 0, -3, 0))   # keyctl(KEYCTL_GET_KEYRING_ID, SESSION), x86_64
    if r < 0:
        raise OSError(ctypes.get_errno(), "keyctl")
    return r


def _keyring(oci: Env, keyinfo: Path, *extra: str) -> tuple[int, str]:
    b = oci.bundle(["/keyinfo"])
    shutil.copy2(keyinfo, b.rootfs / "keyinfo")
    r = oci.pyoci("run", *extra, "--bundle", str(b.path), oci.cid()).ok()
    ident, desc = r.stdout.split(" ", 1)
    return int(ident), desc.strip()


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="keyctl syscall number")
def test_each_container_has_its_own_session_keyring(oci: Env, keyinfo: Path) -> None:
    mine = _session_keyring_of_this_process()
    one, desc_one = _keyring(oci, keyinfo)
    two, desc_two = _keyring(oci, keyinfo)
    assert len({one, two, mine}) == 3
    for desc in (desc_one, desc_two):
        # keyring;uid;gid;perm;name: pyoci:<id>:<random>, searchable by no one
        kind, _uid, _gid, perm, name = desc.split(";", 4)
        assert kind == "keyring" and name.startswith("pyoci:c-"), desc
        assert not int(perm, 16) & 0x00080808, desc   # no user/group/other search
    kept, _ = _keyring(oci, keyinfo, "--no-new-keyring")
    assert kept == mine


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="keyctl syscall number")
def test_exec_gets_a_new_session_keyring(oci: Env, keyinfo: Path) -> None:
    b = oci.bundle(["sleep", "1000"])
    shutil.copy2(keyinfo, b.rootfs / "keyinfo")
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    first = oci.pyoci("exec", cid, "/keyinfo").ok().stdout.split()[0]
    second = oci.pyoci("exec", cid, "/keyinfo").ok().stdout.split()[0]
    assert len({int(first), int(second), _session_keyring_of_this_process()}) == 3
    oci.pyoci("delete", "--force", cid).ok()


def test_exec_into_created_container_before_start(oci: Env) -> None:
    """exec works on a created container (its init waits in pyoci-init)."""
    b = oci.bundle(["true"])
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    r = oci.pyoci("exec", cid, "sh", "-c", "cat /proc/1/comm").ok()
    assert r.stdout.strip() == "pyoci:[2:INIT]"
    oci.pyoci("delete", "--force", cid).ok()


# -- rootless ---------------------------------------------------------------------------


@pytest.fixture
def rl(oci: Env, test_user: HostUser) -> Rootless:  # noqa: F811 (the fixture imported above)
    return Rootless(oci, test_user)


def test_rootless_init_runs_the_sealed_copy_and_is_out_of_reach(rl: Rootless) -> None:
    """As an unprivileged user the memfd is the user's own, mapped to the
    container's root: exec-only, it still leaves the init non-dumpable, with
    its mm in the initial user namespace, out of reach even of the user
    itself (`exec` into a created rootless container gets the namespaces
    from the init over its start socket instead)."""
    b = rl.bundle(["true"])
    rl.save(b)
    cid = rl.oci.cid()
    rl.pyoci("create", "--bundle", str(b.path), cid).ok()
    pid: int = rl.pyoci("state", cid).ok().json()["pid"]
    assert os.readlink(f"/proc/{pid}/exe") == "/memfd:pyoci-init (deleted)"
    assert os.stat(f"/proc/{pid}/environ").st_uid == 0       # not dumpable
    r = rl.pyoci("exec", cid, "true")
    assert os.stat(f"/proc/{pid}/environ").st_uid == 0       # still not dumpable after the exec
    rl.pyoci("delete", "--force", cid).ok()
    assert r.rc == 0, str(r)


@pytest.mark.parametrize("field", ["scheduler", "ioPriority"])
def test_rootless_privileged_priorities_are_refused(rl: Rootless, field: str) -> None:
    """Without CAP_SYS_NICE/CAP_SYS_ADMIN on the host, the kernel refuses a
    real-time policy and the RT I/O class: the error names the field."""
    b = rl.bundle(["true"])
    b.process[field] = ({"policy": "SCHED_FIFO", "priority": 1} if field == "scheduler"
                        else {"class": "IOPRIO_CLASS_RT", "priority": 0})
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    assert f"$.process.{field}" in r.stderr and "Operation not permitted" in r.stderr, str(r)
    assert "(hint: " in r.stderr


def test_rootless_masks_and_readonly_paths(rl: Rootless) -> None:
    b = rl.bundle(["sh", "-c", "stat -c '%t:%T' /proc/timer_list; stat -f -c %T /proc/irq; "
                               "grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1"])
    b.linux["maskedPaths"] = ["/proc/timer_list", "/proc/irq"]
    b.linux["readonlyPaths"] = ["/proc/sys"]
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert r.rc == 0, str(r)
    assert r.stdout.split() == ["1:3", "tmpfs", "ro"], r.stdout
