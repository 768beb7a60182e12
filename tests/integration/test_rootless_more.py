"""Rootless done well: the sysfs fallback, idmapped mounts, errors that name
their cause (user namespace sysctls, FUSE/NFS storage), and pyoci nested in a
rootless pyoci container.

The unprivileged tests run as ``pyoci-test-user`` (made by test_rootless.py's
recipe: useradd -m, a subordinate range if it has none) through runuser, with
the repository's .venv.  The idmapped mount tests run as root; the source
directories live under the test's private directory (ext4 here; a filesystem
without idmapped mounts makes them skip).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.ocitest import PYOCI, Bundle, Env, HostUser, default_config
from helpers.users import Rootless

SYSFS = {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]}


@pytest.fixture(scope="module")
def user(test_user: HostUser) -> HostUser:  # noqa: F811 (the fixture imported above)
    """The rootless test user of test_rootless.py (same name, same setup)."""
    return test_user


@pytest.fixture
def rl(oci: Env, user: HostUser) -> Rootless:
    return Rootless(oci, user)


def _keep_sysfs(b: Bundle) -> None:
    """The runc-style config: a fresh sysfs on /sys (pyoci spec --rootless binds /sys instead)."""
    mounts = [m for m in b.config["mounts"] if m["destination"] != "/sys"]
    b.config["mounts"] = [mounts[0], dict(SYSFS), *mounts[1:]]


def _mountinfo_line(out: str, point: str) -> list[str]:
    for line in out.splitlines():
        f = line.split()
        if len(f) > 4 and f[4] == point:
            return f
    raise AssertionError(f"no mount on {point} in:\n{out}")


# -- 1. sysfs -------------------------------------------------------------------------


def test_rootless_sysfs_without_network_namespace(rl: Rootless) -> None:
    b = rl.bundle(["true"])
    _keep_sysfs(b)
    assert not any(n["type"] == "network" for n in b.namespaces())
    b.sh("ls /sys; echo ==; ls /sys/class/net; echo ==; cat /proc/self/mountinfo; echo ==; "
         "touch /sys/kernel/pyoci-x 2>&1; echo rc=$?")
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert r.rc == 0, str(r)
    top, nets, mountinfo, write = r.stdout.split("==\n")
    for d in ("block", "class", "devices", "fs", "kernel"):
        assert d in top.split(), top
    assert "lo" in nets.split()          # the host's interfaces: /sys is the host's
    f = _mountinfo_line(mountinfo, "/sys")
    assert "ro" in f[5].split(","), f     # read-only as the mount asked
    assert {"nosuid", "nodev", "noexec"} <= set(f[5].split(",")), f
    assert "Read-only file system" in write
    # the host's submounts came along (rbind) and are read-only too
    subs = [ln.split() for ln in mountinfo.splitlines() if len(ln.split()) > 5
            and ln.split()[4].startswith("/sys/")]
    assert subs and all("ro" in s[5].split(",") for s in subs), subs


def test_sysfs_still_fresh_with_a_network_namespace(oci: Env) -> None:
    """Root with a network namespace of its own: a real sysfs (no fallback)."""
    b = oci.bundle(["true"])
    b.sh("ls /sys/class/net")
    r = oci.run(b).ok()
    assert r.stdout.split() == ["lo"]     # its own network namespace's, not the host's


def test_userns_sysfs_fallback_as_root(oci: Env) -> None:
    """Root, a user namespace and no network namespace: the same fallback."""
    b = oci.bundle(["true"], rootless=True, uid=100000, gid=100000)
    _keep_sysfs(b)
    b.drop_namespace("network")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.sh("ls /sys/class/net")
    r = oci.run(b).ok()
    assert "lo" in r.stdout.split()


# -- 2. idmapped mounts ------------------------------------------------------------------


def _idmapped_mount(b: Bundle, source: Path, dest: str, uid_lines: list[tuple[int, int, int]] | None,
                    options: list[str] | None = None) -> None:
    m: dict[str, object] = {"destination": dest, "type": "bind", "source": str(source),
                            "options": options or ["rbind"]}
    if uid_lines is not None:
        m["uidMappings"] = [{"containerID": c, "hostID": h, "size": s} for c, h, s in uid_lines]
        m["gidMappings"] = [{"containerID": c, "hostID": h, "size": s} for c, h, s in uid_lines]
    b.config["mounts"].append(m)


def _owned_dir(oci: Env, name: str, uid: int) -> Path:
    d = oci.mkdir(name)
    (d / "f").write_text("x")
    for p in (d, d / "f"):
        os.chown(p, uid, uid)
    return d


@pytest.fixture
def idmap_ok(oci: Env) -> None:
    from pyoci.linux.idmap import idmapped_mounts_supported

    if not idmapped_mounts_supported():
        pytest.skip("this kernel has no idmapped mounts")


STAT = "stat -c '%u %g %n' /data /data/f; touch /data/new && stat -c '%u %g %n' /data/new"


def test_idmapped_mount_no_userns(oci: Env, idmap_ok: None) -> None:
    """A host directory owned by 1000 appears as 0 in a root container, and a
    file root creates there is 1000 on the host.  runc's semantics: the
    on-disk id containerID appears as hostID, so the mapping is
    {containerID 1000, hostID 0}."""
    src = _owned_dir(oci, "src", 1000)
    b = oci.bundle(["true"])
    _idmapped_mount(b, src, "/data", [(1000, 0, 1)])
    # First thing, from another process: the init's fds (none of the
    # idmapped clone or its user namespace may reach the container).
    b.sh("/bin/busybox sh -c 'ls /proc/1/fd'; " + STAT)
    r = oci.run(b).ok()
    lines = r.stdout.splitlines()
    assert lines[:3] == ["0", "1", "2"], r.stdout
    assert lines[3:] == ["0 0 /data", "0 0 /data/f", "0 0 /data/new"], r.stdout
    st = os.stat(src / "new")
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert os.stat(src / "f").st_uid == 1000          # the host view is unchanged


def test_idmapped_mount_runc_direction(oci: Env, idmap_ok: None) -> None:
    """runc's "simple idmap mount [no userns]": mapping {0 -> 1000}: a file
    owned by 0 on disk appears as 1000; one owned by 1000 is unmapped (the
    overflow id)."""
    src = _owned_dir(oci, "src", 0)
    other = src / "g"
    other.write_text("y")
    os.chown(other, 1000, 1000)
    b = oci.bundle(["true"])
    _idmapped_mount(b, src, "/data", [(0, 1000, 1)])
    b.sh("stat -c '%u %g' /data/f /data/g")
    r = oci.run(b).ok()
    overflow = Path("/proc/sys/kernel/overflowuid").read_text().strip()
    assert r.stdout.splitlines() == ["1000 1000", f"{overflow} {overflow}"]


def test_idmapped_mount_with_userns(oci: Env, idmap_ok: None) -> None:
    """Container root is host 100000; the mount maps on-disk 1000 to 100000,
    so a directory of host uid 1000 is root's inside, and what root creates
    there is 1000's on the host."""
    src = _owned_dir(oci, "src", 1000)
    b = oci.bundle(["true"], rootless=True, uid=100000, gid=100000)
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    (b.rootfs / "data").mkdir()
    _idmapped_mount(b, src, "/data", [(1000, 100000, 1)])
    b.sh(STAT + "; cat /proc/self/uid_map")
    r = oci.run(b).ok()
    lines = r.stdout.splitlines()
    assert lines[:3] == ["0 0 /data", "0 0 /data/f", "0 0 /data/new"], r.stdout
    assert lines[3].split() == ["0", "100000", "65536"]
    st = os.stat(src / "new")
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_idmap_option_uses_the_containers_mappings(oci: Env, idmap_ok: None) -> None:
    """"idmap" without mappings: the container's own (runc): host root's
    files are root's in the container."""
    src = _owned_dir(oci, "src", 0)
    b = oci.bundle(["true"], rootless=True, uid=100000, gid=100000)
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    (b.rootfs / "data").mkdir()
    (b.rootfs / "plain").mkdir()
    _idmapped_mount(b, src, "/data", None, ["rbind", "idmap"])
    b.bind(src, "/plain")
    b.sh("stat -c '%u %g' /data/f /plain/f")
    r = oci.run(b).ok()
    overflow = Path("/proc/sys/kernel/overflowuid").read_text().strip()
    assert r.stdout.splitlines() == ["0 0", f"{overflow} {overflow}"]


def test_ridmap_idmaps_submounts_idmap_does_not(oci: Env, idmap_ok: None) -> None:
    src = _owned_dir(oci, "src", 1000)
    sub = src / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,uid=1000,gid=1000", "tmpfs", str(sub)],
                   check=True)
    try:
        b = oci.bundle(["true"])
        _idmapped_mount(b, src, "/r", [(1000, 0, 1)], ["rbind", "ridmap"])
        _idmapped_mount(b, src, "/i", [(1000, 0, 1)], ["rbind", "idmap"])
        b.sh("stat -c '%u %n' /r/f /r/sub /i/f /i/sub")
        r = oci.run(b).ok()
    finally:
        subprocess.run(["umount", "-l", str(sub)], check=True)
    assert r.stdout.splitlines() == ["0 /r/f", "0 /r/sub", "0 /i/f", "1000 /i/sub"]


def test_idmapped_mount_on_a_filesystem_without_them(oci: Env, idmap_ok: None) -> None:
    b = oci.bundle(["true"])
    _idmapped_mount(b, Path("/sys/kernel"), "/k", [(0, 1000, 1)])
    r = oci.run(b).fails()
    err = r.stderr
    assert "$.mounts[7].uidMappings" in err and "mount_setattr(MOUNT_ATTR_IDMAP)" in err, err
    assert "Invalid argument" in err and "sysfs" in err and "5.12" in err, err


def test_idmapped_mount_rootless_is_refused_with_a_reason(rl: Rootless, idmap_ok: None) -> None:
    src = rl.outdir("src")
    b = rl.bundle(["true"])
    _idmapped_mount(b, src, "/data", [(0, rl.user.uid, 1)])
    b.config["mounts"][-1]["gidMappings"] = [{"containerID": 0, "hostID": rl.user.gid, "size": 1}]
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert r.rc != 0
    assert "$.mounts[" in r.stderr and "Operation not permitted" in r.stderr, r.stderr
    assert "run as root" in r.stderr and f"{src} is on " in r.stderr, r.stderr


def test_features_report_idmap(oci: Env, idmap_ok: None) -> None:
    r = oci.pyoci("features").ok()
    doc = r.json()
    assert doc["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert {"idmap", "ridmap"} <= set(doc["mountOptions"])


# -- 3. errors that explain themselves ---------------------------------------------------------


def test_max_user_namespaces_zero_is_named(oci: Env) -> None:
    """pyoci in a child user namespace whose user.max_user_namespaces is 0
    (set from inside: the limit is per user namespace; the host's stays)."""
    host_value = Path("/proc/sys/user/max_user_namespaces").read_text()
    b = oci.bundle(["true"], rootless=True, uid=0, gid=0)
    b.save()
    cmd, env = oci.command(["run", "--bundle", str(b.path), oci.cid()])
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'
    p = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh", *cmd],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("pyoci: create user namespace: unshare(CLONE_NEWUSER): No space left on device")
    assert "user.max_user_namespaces is 0" in line and "/proc/sys/user/max_user_namespaces" in line
    assert "sysctl -w user.max_user_namespaces=" in line and "pyoci doctor" in line
    assert Path("/proc/sys/user/max_user_namespaces").read_text() == host_value


def test_fuse_source_gets_a_storage_hint(rl: Rootless) -> None:
    if not shutil.which("bindfs") or not os.path.exists("/dev/fuse"):
        pytest.skip("needs bindfs and /dev/fuse")
    back = rl.oci.mkdir("back")
    (back / "data").mkdir(mode=0o777)
    fuse = rl.oci.mkdir("fuse")
    subprocess.run(["bindfs", "--no-allow-other", str(back), str(fuse)], check=True)
    try:
        b = rl.bundle(["true"])
        b.bind(fuse / "data", "/data")
        rl.save(b)
        r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    finally:
        subprocess.run(["umount", str(fuse)], check=True)
    assert r.rc != 0
    err = r.stderr
    assert "bind mount" in err and "$.mounts[" in err and "Permission denied" in err, err
    assert f"{fuse}/data is on fuse" in err and "allow_other" in err, err
    assert "local filesystem" in err and "pyoci doctor" in err, err


# -- 4. nested -----------------------------------------------------------------------------


def _nested_bundle(rl: Rootless, inner_args: str, *, setfcap: bool = True) -> Bundle:
    """An outer rootless container (uid -> 0, size 1) that runs the host's
    pyoci on an inner bundle it builds in its /scratch (a tmpfs; not /tmp,
    which would hide a checkout that lives under /tmp).

    What the outer container needs: the host's /usr, /lib, /lib64 and
    /work/main (the .venv) bound read-only; a writable /scratch; no masked or
    read-only paths under /proc (a new proc mount in a nested user namespace
    needs an unobstructed /proc: the kernel's mnt_too_revealing check); and
    CAP_SETFCAP, because the inner map writes the outer uid 0 (Linux >= 5.12
    asks for CAP_SETFCAP for that)."""
    repo = Path(PYOCI).parents[2]
    b = rl.bundle(["true"], name="outer")
    for d in ("usr", "lib", "lib64", str(repo).lstrip("/"), "inner", "scratch"):
        (b.rootfs / d).mkdir(parents=True, exist_ok=True)
    for src in ("/usr", "/lib", "/lib64", str(repo)):
        b.bind(src, src, "ro", "nosuid", "nodev")
    b.add_mount("/scratch", "tmpfs", "tmpfs", ["nosuid", "nodev", "mode=1777", "size=65536k"])
    b.linux.pop("maskedPaths", None)
    b.linux.pop("readonlyPaths", None)
    if setfcap:
        for k in ("bounding", "effective", "permitted"):
            b.process["capabilities"][k].append("CAP_SETFCAP")
    inner = default_config(["sh", "-c", inner_args], rootless=True, uid=0, gid=0)
    inner["mounts"] = [m if m["destination"] != "/sys" else dict(SYSFS) for m in inner["mounts"]]
    (b.rootfs / "inner" / "config.json").write_text(json.dumps(inner))
    b.sh("set -e; r=/scratch/b/rootfs; mkdir -p $r/bin $r/proc $r/sys $r/dev $r/tmp; "
         "cp /bin/busybox $r/bin/; /bin/busybox --install -s $r/bin; cp /inner/config.json /scratch/b/; "
         "echo outer: $(cat /proc/self/uid_map); set +e; "
         f"{PYOCI} --root /scratch/state run --bundle /scratch/b inner; echo inner-rc=$?")
    return b


def test_nested_rootless_pyoci(rl: Rootless) -> None:
    b = _nested_bundle(rl, "echo pid=$$; cat /proc/self/uid_map /proc/self/gid_map; id -u; ls /sys/class/net")
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert r.rc == 0, str(r)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["outer:", "0", str(rl.user.uid), "1"]
    assert lines[1] == "pid=1", str(r)
    assert lines[2].split() == ["0", "0", "1"] and lines[3].split() == ["0", "0", "1"]
    assert lines[4] == "0"
    assert "lo" in lines[5:-1]        # sysfs fell back to the (outer's) host /sys
    assert lines[-1] == "inner-rc=0"


def test_nested_without_setfcap_says_why(rl: Rootless) -> None:
    b = _nested_bundle(rl, "true", setfcap=False)
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert "inner-rc=1" in r.stdout, str(r)
    assert "write uid_map '0 0 1'" in r.stderr and "CAP_SETFCAP" in r.stderr, r.stderr
