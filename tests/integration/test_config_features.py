"""config.json features, each checked from inside a real container."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.ocitest import (
    Bundle,
    Env,
    caps_mask,
    mountinfo_entry,
    pid_alive,
    status_fields,
    wait_for,
)


def run_ok(oci: Env, b: Bundle, *extra: str, **kw: Any) -> str:
    r = oci.run(b, None, *extra, **kw)
    assert r.rc == 0, str(r)
    return r.stdout


def writable_dir(oci: Env, name: str) -> Path:
    return oci.mkdir(name, 0o777)


# -- root -------------------------------------------------------------------------


def test_root_readonly(oci: Env) -> None:
    b = oci.bundle()
    assert b.config["root"]["readonly"] is True
    b.sh("cat /proc/self/mountinfo; touch /newfile && echo WROTE")
    r = oci.run(b)
    assert "WROTE" not in r.stdout, str(r)
    assert "Read-only file system" in r.stderr, str(r)
    assert r.rc != 0
    assert "ro" in mountinfo_entry(r.stdout, "/")["mount_options"]
    assert not (b.rootfs / "newfile").exists()


def test_root_writable(oci: Env) -> None:
    b = oci.bundle()
    b.config["root"]["readonly"] = False
    b.sh("cat /proc/self/mountinfo; echo data > /newfile")
    out = run_ok(oci, b)
    assert "rw" in mountinfo_entry(out, "/")["mount_options"]
    assert (b.rootfs / "newfile").read_text() == "data\n"


# -- mounts -----------------------------------------------------------------------


def test_bind_mount_rw_dir(oci: Env) -> None:
    src = writable_dir(oci, "src")
    (src / "in.txt").write_text("from host\n")
    b = oci.bundle()
    b.bind(src, "/data", "rw")
    b.sh("cat /data/in.txt; echo from container > /data/out.txt; cat /proc/self/mountinfo")
    out = run_ok(oci, b)
    assert out.startswith("from host\n")
    assert (src / "out.txt").read_text() == "from container\n"
    assert "rw" in mountinfo_entry(out, "/data")["mount_options"]


def test_bind_mount_ro_dir(oci: Env) -> None:
    src = writable_dir(oci, "src")
    (src / "in.txt").write_text("from host\n")
    b = oci.bundle()
    b.bind(src, "/data", "ro")
    b.sh("cat /data/in.txt; cat /proc/self/mountinfo; touch /data/new && echo WROTE; true")
    r = oci.run(b)
    assert r.rc == 0, str(r)
    assert r.stdout.startswith("from host\n")
    assert "WROTE" not in r.stdout
    assert "Read-only file system" in r.stderr
    assert "ro" in mountinfo_entry(r.stdout, "/data")["mount_options"]
    assert sorted(os.listdir(src)) == ["in.txt"]


def test_bind_mount_host_file(oci: Env) -> None:
    f = oci.path("hostfile.txt")
    f.write_text("file content\n")
    os.chmod(f, 0o666)
    ro = oci.path("hostfile-ro.txt")
    ro.write_text("ro content\n")
    b = oci.bundle()
    b.bind(f, "/etc/hostfile")
    b.bind(ro, "/etc/hostfile-ro", "ro")
    b.sh("cat /etc/hostfile /etc/hostfile-ro; [ -f /etc/hostfile ] && echo ISFILE; "
         "echo appended >> /etc/hostfile; echo x >> /etc/hostfile-ro && echo WROTE; true")
    r = oci.run(b)
    assert r.rc == 0, str(r)
    assert r.stdout.splitlines()[:3] == ["file content", "ro content", "ISFILE"]
    assert "WROTE" not in r.stdout
    assert "Read-only file system" in r.stderr
    assert f.read_text() == "file content\nappended\n"
    assert ro.read_text() == "ro content\n"
    # the mount point was created in the rootfs as a file, not a directory
    assert (b.rootfs / "etc" / "hostfile").is_file()


def test_tmpfs_size_and_mode(oci: Env) -> None:
    b = oci.bundle()
    b.add_mount("/scratch", "tmpfs", "tmpfs", ["nosuid", "nodev", "noexec", "size=1m", "mode=1770"])
    b.sh("stat -c %a /scratch; cat /proc/self/mountinfo; "
         "dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>&1 && echo FILLED; "
         "du -k /scratch/big")
    out = run_ok(oci, b)
    lines = out.splitlines()
    assert lines[0] == "1770"
    e = mountinfo_entry(out, "/scratch")
    assert e["fstype"] == "tmpfs"
    assert "size=1024k" in e["super_options"]
    assert "mode=1770" in e["super_options"]
    assert {"nosuid", "nodev", "noexec"} <= e["mount_options"]
    assert "FILLED" not in out
    assert "No space left on device" in out
    assert int(lines[-1].split()[0]) <= 1024


def test_mount_flags_in_mountinfo_and_enforced(oci: Env) -> None:
    src = writable_dir(oci, "src")
    shutil.copy2("/bin/busybox", src / "busybox")
    b = oci.bundle()
    b.bind(src, "/flagged", "nosuid", "noexec", "nodev")
    b.bind(src, "/plain")
    b.sh("cat /proc/self/mountinfo; /plain/busybox echo EXEC-PLAIN; /flagged/busybox echo EXEC-FLAGGED; true")
    r = oci.run(b)
    assert r.rc == 0, str(r)
    flagged = mountinfo_entry(r.stdout, "/flagged")["mount_options"]
    plain = mountinfo_entry(r.stdout, "/plain")["mount_options"]
    assert {"nosuid", "noexec", "nodev"} <= flagged
    assert not {"nosuid", "noexec", "nodev"} & plain
    assert "EXEC-PLAIN" in r.stdout
    assert "EXEC-FLAGGED" not in r.stdout
    assert "Permission denied" in r.stderr


def test_mount_option_defaults_is_a_no_op(oci: Env) -> None:
    # "defaults" (fstab's word, sent by some engines) sets no flag: runc
    # ignores it, and the kernel refuses it as tmpfs data (EINVAL)
    b = oci.bundle()
    b.add_mount("/t", "tmpfs", "tmpfs", ["defaults", "size=1m"])
    b.sh("cat /proc/self/mountinfo")
    assert "size=1024k" in mountinfo_entry(run_ok(oci, b), "/t")["super_options"]


def test_relative_bind_source_is_resolved_against_the_bundle(oci: Env) -> None:
    b = oci.bundle()
    (b.path / "data").mkdir()
    (b.path / "data" / "which").write_text("bundle\n")
    # a decoy with the same relative name in the caller's working directory
    decoy = oci.mkdir("cwd")
    (decoy / "data").mkdir()
    (decoy / "data" / "which").write_text("cwd\n")
    b.add_mount("/data", "bind", "data", ["rbind", "ro"])
    b.sh("cat /data/which")
    out = run_ok(oci, b, cwd=decoy)
    assert out == "bundle\n"


@pytest.mark.parametrize("target_in_rootfs", ["target-exists", "target-missing"])
@pytest.mark.parametrize("link_kind", ["absolute", "relative"])
@pytest.mark.parametrize("mount_kind", ["tmpfs", "bind"])
def test_mount_destination_symlink_stays_in_rootfs(oci: Env, link_kind: str, mount_kind: str,
                                                   target_in_rootfs: str) -> None:
    """rootfs/mnt/evil is a symlink to a host directory: the mount must land
    on that path resolved inside the rootfs (created there if missing, as runc
    does), never on the host directory."""
    hostdir = oci.mkdir("hostdir", 0o777)
    (hostdir / "keep").write_text("host data\n")
    before = {p.name: p.read_bytes() for p in hostdir.iterdir()}
    b = oci.bundle()
    b.config["root"]["readonly"] = False
    evil = b.rootfs / "mnt" / "evil"
    if link_kind == "absolute":
        os.symlink(str(hostdir), evil)
    else:
        os.symlink("../" * 12 + str(hostdir).lstrip("/"), evil)
    if target_in_rootfs == "target-exists":
        (b.rootfs / str(hostdir).lstrip("/")).mkdir(parents=True)
    if mount_kind == "tmpfs":
        b.add_mount("/mnt/evil", "tmpfs", "tmpfs", ["size=1m"])
    else:
        src = writable_dir(oci, "bindsrc")
        (src / "fromsrc").write_text("src\n")
        b.bind(src, "/mnt/evil")
    b.sh("echo pwned > /mnt/evil/pwned; ls /mnt/evil/; cat /proc/self/mountinfo")
    out = run_ok(oci, b)
    # the host directory the link points at is untouched
    assert {p.name: p.read_bytes() for p in hostdir.iterdir()} == before
    # the mount landed inside the rootfs, at the link's target resolved in the root
    inside = str(hostdir)
    e = mountinfo_entry(out, inside)
    if mount_kind == "tmpfs":
        assert e["fstype"] == "tmpfs"
        assert "pwned" in out.split()
        # the write went to the tmpfs: nothing on disk under the rootfs either
        landing = b.rootfs / str(hostdir).lstrip("/")
        assert landing.is_dir() and not (landing / "pwned").exists()
    else:
        assert "fromsrc" in out.split()
        assert (src / "pwned").read_text() == "pwned\n"


@pytest.mark.parametrize("prop,expect", [
    ("private", None),
    ("rprivate", None),
    ("shared", "shared:"),
    ("rshared", "shared:"),
    ("unbindable", "unbindable"),
    ("runbindable", "unbindable"),
])
def test_rootfs_propagation(oci: Env, prop: str, expect: str | None) -> None:
    b = oci.bundle()
    b.linux["rootfsPropagation"] = prop
    b.sh("cat /proc/self/mountinfo")
    out = run_ok(oci, b)
    optional = " ".join(mountinfo_entry(out, "/")["optional"])
    if expect is None:
        assert "shared:" not in optional and "master:" not in optional and "unbindable" not in optional
    else:
        assert expect in optional, out


# -- devices ------------------------------------------------------------------------


def test_default_devices(oci: Env) -> None:
    b = oci.bundle()
    b.sh("for d in null zero full random urandom tty; do stat -c '%n|%F|%t:%T|%a' /dev/$d; done; "
         "for l in ptmx fd stdin stdout stderr; do echo \"$l|$(readlink /dev/$l)\"; done; "
         "head -c 8 /dev/urandom | wc -c; head -c 4 /dev/zero | od -An -tx1; "
         "echo discarded > /dev/null && echo NULL-OK")
    out = run_ok(oci, b)
    lines = out.splitlines()
    devs = {ln.split("|")[0]: ln.split("|")[1:] for ln in lines[:6]}
    expect = {"/dev/null": "1:3", "/dev/zero": "1:5", "/dev/full": "1:7", "/dev/random": "1:8",
              "/dev/urandom": "1:9", "/dev/tty": "5:0"}
    for path, mm in expect.items():
        ftype, majmin, mode = devs[path]
        assert ftype == "character special file", (path, ftype)
        assert majmin == mm, (path, majmin)
        assert mode == "666", (path, mode)
    links = dict(ln.split("|") for ln in lines[6:11])
    assert links == {"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
                     "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
    assert lines[11].strip() == "8"
    assert lines[12].split() == ["00", "00", "00", "00"]
    assert lines[13] == "NULL-OK"


def test_linux_devices(oci: Env) -> None:
    b = oci.bundle()
    b.linux["devices"] = [
        {"path": "/dev/mychar", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 123, "gid": 456},
        {"path": "/dev/myblk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600},
        {"path": "/dev/sub/myfifo", "type": "p", "fileMode": 0o620, "uid": 5, "gid": 6},
    ]
    b.sh("for d in /dev/mychar /dev/myblk /dev/sub/myfifo; do stat -c '%n|%F|%t:%T|%a|%u|%g' $d; done")
    out = run_ok(oci, b)
    got = {ln.split("|")[0]: ln.split("|")[1:] for ln in out.splitlines()}
    assert got["/dev/mychar"] == ["character special file", "1:3", "640", "123", "456"]
    assert got["/dev/myblk"] == ["block special file", "7:0", "600", "0", "0"]
    assert got["/dev/sub/myfifo"][0] == "fifo"
    assert got["/dev/sub/myfifo"][2:] == ["620", "5", "6"]


# -- masked and read-only paths ------------------------------------------------------


def test_masked_paths(oci: Env) -> None:
    b = oci.bundle()
    (b.rootfs / "secret.txt").write_text("topsecret\n")
    (b.rootfs / "secretdir").mkdir()
    (b.rootfs / "secretdir" / "inner").write_text("inner secret\n")
    b.linux["maskedPaths"] = ["/secret.txt", "/secretdir", "/proc/cmdline", "/does/not/exist"]
    b.sh("echo \"file=[$(cat /secret.txt)]\"; echo \"dir=[$(ls -A /secretdir)]\"; "
         "echo \"cmdline=$(head -c 16 /proc/cmdline | wc -c)\"; "
         "touch /secretdir/new 2>/dev/null && echo DIR-WRITABLE; "
         "echo overwrite > /secret.txt; cat /proc/self/mountinfo")
    out = run_ok(oci, b)
    lines = out.splitlines()
    assert lines[0] == "file=[]"
    assert lines[1] == "dir=[]"
    assert lines[2] == "cmdline=0"
    assert "DIR-WRITABLE" not in out
    assert (b.rootfs / "secret.txt").read_text() == "topsecret\n"
    assert "ro" in mountinfo_entry(out, "/secretdir")["mount_options"]


def test_readonly_paths(oci: Env) -> None:
    b = oci.bundle()
    b.config["root"]["readonly"] = False
    for d in ("rodir", "rwdir"):
        (b.rootfs / d).mkdir()
    b.linux["readonlyPaths"] = ["/rodir", "/proc/sys", "/does/not/exist"]
    b.sh("touch /rwdir/ok && echo RW-OK; touch /rodir/new && echo RO-WROTE; cat /proc/self/mountinfo; true")
    r = oci.run(b)
    assert r.rc == 0, str(r)
    assert "RW-OK" in r.stdout
    assert "RO-WROTE" not in r.stdout
    assert "Read-only file system" in r.stderr
    assert "ro" in mountinfo_entry(r.stdout, "/rodir")["mount_options"]
    assert "ro" in mountinfo_entry(r.stdout, "/proc/sys")["mount_options"]
    assert not (b.rootfs / "rodir" / "new").exists()


# -- sysctl ----------------------------------------------------------------------


def test_sysctl(oci: Env) -> None:
    host_fwd = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    host_shmmax = Path("/proc/sys/kernel/shmmax").read_text()
    b = oci.bundle()
    new_fwd = "0" if host_fwd.strip() == "1" else "1"
    b.linux["sysctl"] = {"net.ipv4.ip_forward": new_fwd, "kernel.shmmax": "123456789"}
    b.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax")
    out = run_ok(oci, b)
    assert out.split() == [new_fwd, "123456789"]
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_fwd
    assert Path("/proc/sys/kernel/shmmax").read_text() == host_shmmax


# -- process ------------------------------------------------------------------------


def test_process_args_preserved(oci: Env) -> None:
    b = oci.bundle()
    b.set_args("sh", "-c", 'for a in "$@"; do echo "[$a]"; done', "argv0", "a b", "", "c*", "$HOME")
    assert run_ok(oci, b) == "[a b]\n[]\n[c*]\n[$HOME]\n"


def test_env_is_exactly_the_configs(oci: Env) -> None:
    b = oci.bundle()
    b.set_args("/bin/env")
    b.process["env"] = ["PATH=/bin", "FOO=bar baz", "EMPTY=", "MULTI=a=b"]
    out = run_ok(oci, b, env={"PYOCI_LEAK_MARKER": "leaked-from-the-runtime"})
    # plus HOME from the image's /etc/passwd, which runc adds too when env has none
    assert sorted(out.splitlines()) == sorted([*b.process["env"], "HOME=/root"])
    assert "leaked" not in out


def test_cwd(oci: Env) -> None:
    b = oci.bundle()
    (b.rootfs / "work" / "dir").mkdir(parents=True)
    (b.rootfs / "work" / "dir" / "here").write_text("relative read\n")
    b.process["cwd"] = "/work/dir"
    b.sh("pwd; cat ./here")
    assert run_ok(oci, b) == "/work/dir\nrelative read\n"


def test_user_uid_gid_additional_gids(oci: Env) -> None:
    out_dir = writable_dir(oci, "out")
    b = oci.bundle()
    b.bind(out_dir, "/out")
    b.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 2000]}
    b.sh("id; grep -E '^(Uid|Gid|Groups):' /proc/self/status; touch /out/made")
    out = run_ok(oci, b)
    lines = out.splitlines()
    assert lines[0] == "uid=1000 gid=1001 groups=10,2000"
    f = status_fields("\n".join(lines[1:]))
    assert f["Uid"].split() == ["1000"] * 4
    assert f["Gid"].split() == ["1001"] * 4
    assert f["Groups"].split() == ["10", "2000"]
    st = os.stat(out_dir / "made")
    assert (st.st_uid, st.st_gid) == (1000, 1001)


def test_umask(oci: Env) -> None:
    out_dir = writable_dir(oci, "out")
    b = oci.bundle()
    b.bind(out_dir, "/out")
    b.process["user"]["umask"] = 0o027
    b.sh("umask; touch /out/f; mkdir /out/d")
    assert run_ok(oci, b) == "0027\n"
    assert os.stat(out_dir / "f").st_mode & 0o777 == 0o640
    assert os.stat(out_dir / "d").st_mode & 0o777 == 0o750


def test_rlimits(oci: Env) -> None:
    b = oci.bundle()
    b.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
        {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
        {"type": "RLIMIT_NPROC", "soft": 77, "hard": 88},
    ]
    b.sh("ulimit -n; cat /proc/self/limits")
    out = run_ok(oci, b)
    lines = out.splitlines()
    assert lines[0] == "123"
    limits = {ln[:26].strip(): ln[26:].split()[:2] for ln in lines[2:]}
    assert limits["Max open files"] == ["123", "456"]
    assert limits["Max core file size"] == ["4096", "8192"]
    assert limits["Max processes"] == ["77", "88"]


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(oci: Env, nnp: bool) -> None:
    b = oci.bundle()
    b.process["noNewPrivileges"] = nnp
    b.sh("grep NoNewPrivs /proc/self/status")
    assert status_fields(run_ok(oci, b))["NoNewPrivs"] == ("1" if nnp else "0")


def test_oom_score_adj(oci: Env) -> None:
    b = oci.bundle()
    b.process["oomScoreAdj"] = 567
    b.sh("cat /proc/self/oom_score_adj")
    assert run_ok(oci, b).strip() == "567"


CAP_CASES = {
    # root: the kernel recomputes permitted/effective at execve from the
    # bounding set, so a config where they agree must come out exactly.
    "root": (0, {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
                 "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
                 "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
                 "inheritable": [], "ambient": []}),
    # a non-root user keeps exactly its ambient set across execve
    "user-ambient": (1000, {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT"],
                            "effective": ["CAP_KILL", "CAP_NET_RAW"],
                            "permitted": ["CAP_KILL", "CAP_NET_RAW"],
                            "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
                            "ambient": ["CAP_KILL", "CAP_NET_RAW"]}),
    "none": (0, {"bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": []}),
}


@pytest.mark.parametrize("case", list(CAP_CASES))
def test_capabilities(oci: Env, case: str) -> None:
    uid, caps = CAP_CASES[case]
    b = oci.bundle()
    b.process["user"] = {"uid": uid, "gid": uid}
    b.process["capabilities"] = caps
    b.sh("grep ^Cap /proc/self/status")
    f = status_fields(run_ok(oci, b))
    for field, key in (("CapBnd", "bounding"), ("CapEff", "effective"), ("CapPrm", "permitted"),
                       ("CapInh", "inheritable"), ("CapAmb", "ambient")):
        assert int(f[field], 16) == caps_mask(caps[key]), (field, f[field], caps[key])


# -- identity and namespaces ----------------------------------------------------------


def test_hostname_and_domainname(oci: Env) -> None:
    host_name = Path("/proc/sys/kernel/hostname").read_text()
    host_domain = Path("/proc/sys/kernel/domainname").read_text()
    b = oci.bundle()
    b.config["hostname"] = "box-one"
    b.config["domainname"] = "example.test"
    b.sh("hostname; cat /proc/sys/kernel/domainname")
    assert run_ok(oci, b) == "box-one\nexample.test\n"
    assert Path("/proc/sys/kernel/hostname").read_text() == host_name
    assert Path("/proc/sys/kernel/domainname").read_text() == host_domain


def test_new_namespaces(oci: Env) -> None:
    b = oci.bundle()
    b.drop_namespace("ipc")  # not listed: shared with the runtime
    b.sh("echo $$; for n in pid net uts mnt ipc; do echo $n $(readlink /proc/self/ns/$n); done")
    out = run_ok(oci, b)
    lines = out.splitlines()
    assert lines[0] == "1"
    inside = {ln.split()[0]: ln.split()[1] for ln in lines[1:]}
    for ns in ("pid", "net", "uts", "mnt"):
        assert inside[ns] != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert inside["ipc"] == os.readlink("/proc/self/ns/ipc")


def test_join_network_namespace_by_path(oci: Env) -> None:
    name = f"pyoci-it-{oci.token[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    oci.netns.append(name)
    path = f"/run/netns/{name}"
    b = oci.bundle()
    b.set_namespace("network", path)
    b.sh("readlink /proc/self/ns/net; ls /sys/class/net")
    out = run_ok(oci, b)
    lines = out.split()
    assert lines[0] == f"net:[{os.stat(path).st_ino}]"
    assert lines[1:] == ["lo"]


def test_join_uts_namespace_of_another_container(oci: Env) -> None:
    a = oci.bundle(["sleep", "1000"])
    a.config["hostname"] = "first-box"
    a.save()
    cid_a = oci.cid()
    oci.pyoci("create", "--bundle", str(a.path), cid_a).ok()
    pid_a = oci.state(cid_a)["pid"]
    b = oci.bundle()
    b.config.pop("hostname", None)
    b.set_namespace("uts", f"/proc/{pid_a}/ns/uts")
    b.sh("hostname; readlink /proc/self/ns/uts")
    out = run_ok(oci, b)
    assert out.split() == ["first-box", os.readlink(f"/proc/{pid_a}/ns/uts")]
    oci.pyoci("delete", "--force", cid_a).ok()


def test_user_namespace_mappings_as_root(oci: Env) -> None:
    out_dir = writable_dir(oci, "out")
    b = oci.bundle()
    # as in real use, the rootfs belongs to the user namespace's root
    Bundle(b.path, b.config).chown_all(100000, 100000)
    b.set_namespace("user")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.bind(out_dir, "/out")
    b.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u /bin/busybox; "
         "touch /out/by-root; chown 1000:1000 /out/by-root; touch /out/plain")
    b.process["capabilities"] = {k: ["CAP_CHOWN", "CAP_DAC_OVERRIDE"] for k in ("bounding", "effective",
                                                                              "permitted")}
    out = run_ok(oci, b)
    lines = out.splitlines()
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2] == "0"
    assert lines[3] == "0"  # host uid 100000 is root in the container
    st = os.stat(out_dir / "plain")
    assert (st.st_uid, st.st_gid) == (100000, 100000)
    st = os.stat(out_dir / "by-root")
    assert (st.st_uid, st.st_gid) == (101000, 101000)


# -- hooks ------------------------------------------------------------------------------


STAGES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]


def test_hooks_every_stage(oci: Env) -> None:
    out = writable_dir(oci, "hookout")
    b = oci.bundle()
    b.config["annotations"] = {"org.pyoci.test": "hooks"}
    b.bind(out, "/hookout")
    hooks: dict[str, list[dict[str, Any]]] = {}
    for stage in STAGES:
        if stage == "startContainer":
            # runs inside the container: the path is in the rootfs
            script = b.rootfs / "bin" / "start-hook.sh"
            script.write_text("#!/bin/sh\ncat > /hookout/startContainer.json\n"
                              "echo startContainer >> /hookout/order\n")
            os.chmod(script, 0o755)
            hooks[stage] = [{"path": "/bin/start-hook.sh", "env": ["PATH=/bin"]}]
        else:
            hooks[stage] = [oci.hook(f'cat > {out}/{stage}.json; echo {stage} >> {out}/order; '
                                     f'echo "$1|$HOOKVAR|${{PYOCI_LEAK_MARKER:-unset}}" > {out}/{stage}.args',
                                     args=[f"arg-{stage}"], env=[f"HOOKVAR=var-{stage}"])]
    b.config["hooks"] = hooks
    b.sh("echo process >> /hookout/order; exec sleep 1000")
    b.save()
    cid = oci.cid()
    marker = {"PYOCI_LEAK_MARKER": "leaked"}
    oci.pyoci("create", "--bundle", str(b.path), cid, env=marker).ok()
    pid = oci.state(cid)["pid"]
    problems = []
    order_after_create = (out / "order").read_text().split()
    # prestart runs in `create`, right before createRuntime (runtime-spec
    # 1.0.2+, runc 1.1.5)
    if order_after_create != ["prestart", "createRuntime", "createContainer"]:
        problems.append(f"hooks run by create: {order_after_create}")
    oci.pyoci("start", cid, env=marker).ok()
    wait_for(lambda: "process" in (out / "order").read_text().split(), what="the process")
    if not (out / "poststart.json").exists():
        problems.append("poststart had not run when start returned")
    oci.pyoci("delete", "--force", cid, env=marker).ok()
    order = (out / "order").read_text().split()
    if (order[:4] != ["prestart", "createRuntime", "createContainer", "startContainer"]
            or order[-1] != "poststop" or sorted(order[4:6]) != ["poststart", "process"]):
        problems.append(f"order of the hooks: {order}")

    expect_status = {"prestart": "creating", "createRuntime": "creating", "createContainer": "creating",
                     "startContainer": "created", "poststart": "running", "poststop": "stopped"}
    for stage in STAGES:
        want: dict[str, Any] = {"id": cid, "bundle": str(b.path), "status": expect_status[stage],
                                "annotations": {"org.pyoci.test": "hooks"}}
        if stage != "poststop":
            want["pid"] = pid
        try:
            st = json.loads((out / f"{stage}.json").read_text())
        except FileNotFoundError:
            problems.append(f"{stage}: did not run")
            continue
        got = {k: st.get(k) for k in want}
        if got != want:
            problems.append(f"{stage}: got {got}, want {want}")
        if not st.get("ociVersion"):
            problems.append(f"{stage}: no ociVersion")
        if stage != "startContainer":
            args = (out / f"{stage}.args").read_text().strip()
            if args != f"arg-{stage}|var-{stage}|unset":
                problems.append(f"{stage}: args/env {args!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("stage", ["createRuntime", "prestart"])
def test_hook_timeout(oci: Env, stage: str) -> None:
    """A hook that outlives its timeout is killed and fails `create`, which
    runs both stages; nothing is left."""
    b = oci.bundle(["sleep", "1000"])
    b.config["hooks"] = {stage: [oci.hook("exec sleep 60", timeout=1)]}
    b.save()
    cid = oci.cid()
    r = oci.pyoci("create", "--bundle", str(b.path), cid)
    if r.rc == 0:
        oci.pyoci("delete", "--force", cid)
    assert r.rc != 0, str(r)
    assert r.duration < 10, f"the 1 s timeout was not honoured ({r.duration:.1f} s)"
    assert len(r.err_lines) == 1, str(r)
    assert stage in r.stderr and "timed out" in r.stderr
    assert not (oci.root / cid).exists()
    assert oci.pyoci("state", cid).rc != 0


@pytest.mark.parametrize("stage", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create(oci: Env, stage: str) -> None:
    out = writable_dir(oci, "out")
    b = oci.bundle()
    b.bind(out, "/out")
    b.sh("touch /out/ran")
    b.config["hooks"] = {stage: [oci.hook("exit 0"), oci.hook("echo hook-noise >&2; exit 3")]}
    b.save()
    cid = oci.cid()
    r = oci.pyoci("create", "--bundle", str(b.path), cid)
    if r.rc == 0:
        oci.pyoci("delete", "--force", cid)
    assert r.rc != 0, str(r)
    errs = [ln for ln in r.err_lines if ln.startswith("pyoci:")]
    assert len(errs) == 1, str(r)
    assert stage in errs[0] and f"$.hooks.{stage}[1]" in errs[0] and "status 3" in errs[0], errs[0]
    assert not (oci.root / cid).exists()
    assert oci.pyoci("state", cid).rc != 0
    assert not (out / "ran").exists()


def test_failing_start_container_hook_fails_start(oci: Env) -> None:
    out = writable_dir(oci, "out")
    b = oci.bundle()
    b.bind(out, "/out")
    b.sh("touch /out/ran; exec sleep 1000")
    script = b.rootfs / "bin" / "bad-hook.sh"
    script.write_text("#!/bin/sh\nexit 4\n")
    os.chmod(script, 0o755)
    b.config["hooks"] = {"startContainer": [{"path": "/bin/bad-hook.sh"}]}
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    pid = oci.state(cid)["pid"]
    r = oci.pyoci("start", cid)
    assert r.rc != 0, str(r)
    assert len(r.err_lines) == 1 and "startContainer" in r.stderr, str(r)
    wait_for(lambda: not pid_alive(pid), what="the container to stop after its startContainer hook failed")
    assert not (out / "ran").exists()
    oci.pyoci("delete", "--force", cid).ok()


def test_failing_poststart_hook_only_warns(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"])
    b.config["hooks"] = {"poststart": [oci.hook("exit 5")]}
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    r = oci.pyoci("start", cid)
    assert r.rc == 0, str(r)
    assert len(r.err_lines) == 1 and "warning" in r.stderr and "poststart" in r.stderr, str(r)
    assert oci.state(cid)["status"] == "running"
    oci.pyoci("delete", "--force", cid).ok()


def test_failing_poststop_hook_only_warns(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"])
    b.config["hooks"] = {"poststop": [oci.hook("exit 6")]}
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    oci.pyoci("start", cid).ok()
    log = oci.path("log.json")
    r = oci.pyoci("delete", "--force", cid, log=log, log_format="json")
    assert r.rc == 0, str(r)
    assert len(r.err_lines) == 1 and "warning" in r.stderr and "poststop" in r.stderr, str(r)
    assert not log.exists() or log.read_text() == ""
    assert oci.pyoci("state", cid).rc != 0


def test_annotations_in_state(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"])
    ann = {"org.example.one": "1", "org.example.two": "second value"}
    b.config["annotations"] = ann
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    assert oci.state(cid)["annotations"] == ann
    oci.pyoci("delete", "--force", cid).ok()


# -- fds and stdio ----------------------------------------------------------------------


def _create_with_fds(oci: Env, b: Bundle, *extra: str) -> tuple[str, int]:
    """`create` with fds 3, 4, 5, 6 and 9 open in the caller; returns (id, pid)."""
    b.save()
    infile = oci.path("fd3-input")
    infile.write_text("through fd 3\n")
    outfile = oci.path("fd4-output")
    outfile.write_text("")
    cid = oci.cid()
    cmd, env = oci.command(["create", *extra, "--bundle", str(b.path), cid])
    wrapper = f'exec "$@" 3<{infile} 4>{outfile} 5<{infile} 6<{infile} 9<{infile}'
    with open(oci.path("fds.out"), "wb") as fo, open(oci.path("fds.err"), "wb") as fe:
        p = subprocess.run(["sh", "-c", wrapper, "sh", *cmd], stdin=subprocess.DEVNULL, stdout=fo,
                           stderr=fe, env=env, timeout=60)
    assert p.returncode == 0, oci.path("fds.err").read_text()
    return cid, oci.state(cid)["pid"]


def _fds_of(pid: int) -> list[int]:
    return sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))


def test_preserve_fds(oci: Env) -> None:
    b = oci.bundle()
    b.sh("cat <&3 >&4; exec sleep 1000")
    cid, pid = _create_with_fds(oci, b, "--preserve-fds", "2")
    oci.pyoci("start", cid).ok()
    wait_for(lambda: oci.path("fd4-output").read_text(), what="the container to copy fd 3 to fd 4")
    assert oci.path("fd4-output").read_text() == "through fd 3\n"
    wait_for(lambda: Path(f"/proc/{pid}/comm").read_text().strip() == "sleep", what="exec sleep")
    assert _fds_of(pid) == [0, 1, 2, 3, 4]
    assert os.readlink(f"/proc/{pid}/fd/3") == str(oci.path("fd3-input"))
    assert os.readlink(f"/proc/{pid}/fd/4") == str(oci.path("fd4-output"))
    oci.pyoci("delete", "--force", cid).ok()


def test_no_host_fds_without_preserve_fds(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"])
    cid, pid = _create_with_fds(oci, b)
    # even while waiting for start, the init holds no fd of the caller
    held = {os.readlink(f"/proc/{pid}/fd/{n}") for n in _fds_of(pid)}
    assert str(oci.path("fd3-input")) not in held and str(oci.path("fd4-output")) not in held, held
    oci.pyoci("start", cid).ok()
    wait_for(lambda: Path(f"/proc/{pid}/comm").read_text().strip() == "sleep", what="exec sleep")
    assert _fds_of(pid) == [0, 1, 2]
    oci.pyoci("delete", "--force", cid).ok()


def test_create_stdio_is_the_containers(oci: Env) -> None:
    b = oci.bundle()
    b.sh("cat; echo to-stderr >&2")
    b.save()
    cid = oci.cid()
    so, se = oci.path("c.out"), oci.path("c.err")
    oci.pyoci("create", "--bundle", str(b.path), cid, stdin="hello on stdin\n", stdout=so, stderr=se).ok()
    oci.pyoci("start", cid).ok()
    oci.wait_status(cid, "stopped")
    assert so.read_text() == "hello on stdin\n"
    assert se.read_text() == "to-stderr\n"
    oci.pyoci("delete", cid).ok()


def test_without_mount_namespace_delete_unmounts(oci: Env) -> None:
    """No mount namespace: the mounts are made in the caller's namespace (under
    the rootfs) and the container is chrooted; delete must unmount them all."""
    b = oci.bundle(["sh", "-c", "echo $$ > /out/pid; ls /proc/self/ns >/dev/null && exec sleep 1000"])
    b.drop_namespace("mount")
    out = writable_dir(oci, "out")
    b.bind(out, "/out")
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    pid = oci.state(cid)["pid"]
    try:
        mine = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()
                if str(b.rootfs) in ln]
        assert f"{b.rootfs}/proc" in mine and f"{b.rootfs}/out" in mine, mine
        assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
        oci.pyoci("start", cid).ok()
        wait_for(lambda: (out / "pid").exists(), what="the container to run")
        assert os.stat(f"/proc/{pid}/root").st_ino == os.stat(b.rootfs).st_ino
    finally:
        oci.pyoci("delete", "--force", cid).ok()
    assert not [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if str(b.rootfs) in ln]


def test_without_mount_namespace_run(oci: Env) -> None:
    b = oci.bundle()
    b.drop_namespace("mount")
    b.sh("cat /proc/self/mountinfo > /dev/null; ls /dev/null && echo OK")
    assert run_ok(oci, b).split() == ["/dev/null", "OK"]


def test_no_pivot(oci: Env) -> None:
    b = oci.bundle()
    b.sh("ls /; cat /proc/self/mountinfo | grep -c . >/dev/null && echo OK")
    out = run_ok(oci, b, "--no-pivot")
    assert "bin" in out.split() and out.rstrip().endswith("OK")
