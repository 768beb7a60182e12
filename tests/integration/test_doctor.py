"""`pyoci doctor`, run for real as root and as throwaway users (created like
in test_rootless_ranges.py: one with 65536 subordinate ids, one with none,
one with 1000).

Nothing here changes the machine for longer than a test: /dev/net/tun and
/dev/fuse are never chmod'ed; where a test needs them with another mode it
binds a fresh device node over them inside a private mount namespace
(`unshare -m`), which disappears with the test's processes.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.ocitest import BASE_PATH, PYOCI, TOKEN_VAR, Env
from helpers.users import SubidUser

from pyoci.linux import subid

CHECK_NAMES = ["user namespaces", "subuid", "subgid", "newuidmap", "newgidmap", "XDG_RUNTIME_DIR",
               "cgroups", "/dev/net/tun", "clone3", "mount API", "idmapped mounts", "time namespace",
               "overlayfs"]


class Doctor:
    """Runs `pyoci doctor --json` as a user, optionally wrapped (unshare -m ...)."""

    def __init__(self, oci: Env, user: SubidUser | None) -> None:
        self.oci = oci
        self.user = user
        self.rc = 0
        self.stdout = ""
        self.stderr = ""
        self.results: list[dict[str, str]] = []

    def user_dir(self, name: str, mode: int = 0o755) -> Path:
        assert self.user is not None
        d = self.oci.path(name)
        d.mkdir(mode=mode)
        os.chmod(d, mode)
        os.chown(d, self.user.uid, self.user.gid)
        return d

    def command(self, *paths: str, xdg: str | None = None, json_out: bool = True) -> list[str]:
        env = {"PATH": BASE_PATH, "LANG": "C.UTF-8", TOKEN_VAR: self.oci.token,
               "HOME": self.user.home if self.user else "/root"}
        if xdg is not None:
            env["XDG_RUNTIME_DIR"] = xdg
        cmd = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), PYOCI, "doctor"]
        cmd += (["--json"] if json_out else []) + list(paths)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user.name, "--", *cmd]
        return cmd

    def run(self, *paths: str, xdg: str | None = None, json_out: bool = True,
            wrap: str | None = None) -> Doctor:
        """``wrap``: a shell snippet run as root in a private mount namespace
        before doctor (doctor runs with `exec` after it)."""
        cmd = self.command(*paths, xdg=xdg, json_out=json_out)
        if wrap is not None:
            script = f"set -e\n{wrap}\nexec {shlex.join(cmd)}\n"
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": BASE_PATH})
        self.rc, self.stdout, self.stderr = p.returncode, p.stdout, p.stderr
        if json_out:
            assert p.stdout.startswith("["), f"rc={p.returncode}\nstdout={p.stdout}\nstderr={p.stderr}"
            self.results = json.loads(p.stdout)
        return self

    def get(self, name: str) -> dict[str, str]:
        found = [r for r in self.results if r["name"] == name]
        assert len(found) == 1, f"{name!r} in {json.dumps(self.results, indent=1)}"
        return found[0]

    def status(self, name: str) -> str:
        return self.get(name)["status"]

    def failures(self) -> list[dict[str, str]]:
        return [r for r in self.results if r["status"] == "fail"]

    def __str__(self) -> str:
        return f"rc={self.rc}\n{json.dumps(self.results, indent=1)}\nstderr={self.stderr}"


def xdg_dir(d: Doctor, mode: int = 0o700) -> str:
    return str(d.user_dir("xdg", mode))


def test_json_shape_and_exit_status_as_root(oci: Env) -> None:
    d = Doctor(oci, None).run(str(oci.tmp))
    assert [r["name"] for r in d.results] == CHECK_NAMES + [f"storage {oci.tmp}"]
    for r in d.results:
        assert set(r) == {"name", "status", "found", "fix"}, r
        assert r["status"] in ("ok", "warn", "fail"), r
        assert r["found"], r
        if r["status"] != "ok":
            assert r["fix"], r
    assert d.rc == (1 if d.failures() else 0), str(d)
    assert not d.failures(), str(d)
    assert d.get("subuid")["found"].startswith("not needed as root")
    storage = d.get(f"storage {oci.tmp}")
    assert storage["status"] == "ok", str(d)
    assert "chown'ed to uid 100000" in storage["found"]
    assert os.listdir(oci.tmp) == [] or not any(n.startswith(".pyoci-doctor") for n in os.listdir(oci.tmp))


def test_table_output(oci: Env, users: dict[str, SubidUser]) -> None:
    d = Doctor(oci, users["none"])
    d.run(xdg=xdg_dir(d), json_out=False)
    assert d.rc == 1, d.stdout + d.stderr
    lines = d.stdout.splitlines()
    assert lines[0] == f"pyoci doctor: {users['none'].name} (uid {users['none'].uid}, " \
                       f"gid {users['none'].gid}), rootless"
    assert lines[1].split()[:3] == ["STATUS", "CHECK", "FOUND"]
    for name in CHECK_NAMES:
        assert any(ln.split(None, 1)[1].startswith(name) for ln in lines[2:-1] if ln[:1] != " "), name
    assert any(ln.startswith("FAIL") and "subuid" in ln for ln in lines)
    assert any(ln.strip().startswith("fix: as root: `usermod --add-subuids") for ln in lines)
    assert lines[-1].endswith("failure(s)")


def test_good_user_passes_or_warns(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["good"]
    assert u.sub is not None
    d = Doctor(oci, u)
    xdg = xdg_dir(d)
    store = d.user_dir("store")
    d.run(str(store), xdg=xdg)
    assert d.rc == 0, str(d)
    assert not d.failures(), str(d)
    assert d.status("user namespaces") == "ok"
    for kind in ("subuid", "subgid"):
        r = d.get(kind)
        assert r["status"] == "ok", str(d)
        assert f"{u.name}:{u.sub[0]}:65536" in r["found"]
    assert d.status("newuidmap") == "ok" and d.status("newgidmap") == "ok"
    assert d.get("XDG_RUNTIME_DIR") == {"name": "XDG_RUNTIME_DIR", "status": "ok",
                                        "found": f"{xdg} (yours, mode 0700)", "fix": ""}
    r = d.get(f"storage {store}")
    assert r["status"] == "ok", str(d)
    assert f"chown'ed to subordinate uid {u.sub[0]} (container uid 1)" in r["found"]
    assert r["found"].startswith("ext4") or "(" in r["found"]
    assert os.listdir(store) == []      # the probe file is gone
    # the default paths when none are given: the state root and ~/.local/share/containers
    d.run(xdg=xdg)
    assert d.get(f"storage {xdg}/pyoci")["found"] == "not present"
    assert d.get(f"storage {u.home}/.local/share/containers")["found"] == "not present"


def test_user_without_ranges_fails_with_the_fix(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["none"]
    d = Doctor(oci, u)
    store = d.user_dir("store")
    d.run(str(store), xdg=xdg_dir(d))
    assert d.rc == 1, str(d)
    free_uid = subid.free_start(subid.read("uid"))
    for kind in ("uid", "gid"):
        r = d.get(f"sub{kind}")
        assert r["status"] == "fail", str(d)
        assert f"no entry for user {u.name} (uid {u.uid}) in /etc/sub{kind}" in r["found"]
        assert f"usermod --add-sub{kind}s " in r["fix"] and f"{u.name}:" in r["fix"]
    assert f"usermod --add-subuids {free_uid}-{free_uid + 65535} {u.name}" in d.get("subuid")["fix"]
    r = d.get(f"storage {store}")
    assert r["status"] == "warn" and "chown probe skipped" in r["found"], str(d)
    # the user namespace itself works for everybody
    assert d.status("user namespaces") == "ok"
    assert {f["name"] for f in d.failures()} == {"subuid", "subgid"}


def test_small_range_warns(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["small"]
    d = Doctor(oci, u)
    store = d.user_dir("store")
    d.run(str(store), xdg=xdg_dir(d))
    assert d.rc == 0, str(d)
    r = d.get("subuid")
    assert r["status"] == "warn", str(d)
    assert "(1000 ids)" in r["found"] and "fewer than the 65536" in r["found"]
    assert "usermod --add-subuids" in r["fix"]
    # the probe maps what there is and still works
    assert d.status(f"storage {store}") == "ok", str(d)


def test_xdg_runtime_dir_states(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["good"]
    d = Doctor(oci, u)
    d.run()
    r = d.get("XDG_RUNTIME_DIR")
    assert r["status"] == "warn" and r["found"].startswith("not set"), str(d)
    assert f"/run/user/{u.uid}" in r["fix"]
    d.run(xdg=str(oci.path("missing")))
    r = d.get("XDG_RUNTIME_DIR")
    assert r["status"] == "fail" and "ENOENT" in r["found"], str(d)
    assert d.rc == 1
    d.run(xdg=str(oci.tmp))                  # root's directory
    r = d.get("XDG_RUNTIME_DIR")
    assert r["status"] == "fail" and "belongs to uid 0" in r["found"], str(d)
    loose = d.user_dir("loose", 0o755)
    d.run(xdg=str(loose))
    r = d.get("XDG_RUNTIME_DIR")
    assert r["status"] == "warn" and "mode 0755" in r["found"], str(d)
    assert r["fix"] == f"chmod 0700 {loose}"


def _user_can_rw(u: SubidUser, path: str, wrap: str = "") -> bool:
    test = f"test -r {path} -a -w {path}"
    cmd = ["runuser", "-u", u.name, "--", "sh", "-c", test]
    if wrap:
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               f"set -e\n{wrap}\nexec {shlex.join(cmd)}"]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def _node(oci: Env, name: str, major: int, minor: int, mode: int) -> Path:
    p = oci.path(name)
    os.mknod(p, stat.S_IFCHR | mode, os.makedev(major, minor))
    os.chmod(p, mode)
    return p


def test_tun_status_matches_reality(oci: Env, users: dict[str, SubidUser]) -> None:
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("this machine has no /dev/net/tun")
    u = users["good"]
    before = os.stat("/dev/net/tun")
    d = Doctor(oci, u)
    xdg = xdg_dir(d)
    # the machine as it is
    d.run(xdg=xdg)
    assert d.status("/dev/net/tun") == ("ok" if _user_can_rw(u, "/dev/net/tun") else "warn"), str(d)
    # both ways, with a node of the mode we want bound over it in a private mount namespace
    for mode, expect in ((0o666, "ok"), (0o600, "warn")):
        node = _node(oci, f"tun-{mode:o}", 10, 200, mode)
        wrap = f"mount --bind {node} /dev/net/tun"
        assert _user_can_rw(u, "/dev/net/tun", wrap) == (expect == "ok")
        d.run(xdg=xdg, wrap=wrap)
        r = d.get("/dev/net/tun")
        assert r["status"] == expect, str(d)
        assert f"mode {mode:04o}" in r["found"]
        if expect == "warn":
            assert "chmod 0666 /dev/net/tun" in r["fix"]
    after = os.stat("/dev/net/tun")
    assert (after.st_mode, after.st_uid, after.st_rdev) == (before.st_mode, before.st_uid, before.st_rdev)


def test_fuse_home_like_nfs_fails_storage(oci: Env, users: dict[str, SubidUser]) -> None:
    """A FUSE mount the user makes (bindfs, no allow_other) refuses chown to
    other ids the way an NFS server does."""
    if not os.path.exists("/usr/bin/bindfs"):
        pytest.skip("bindfs not installed")
    u = users["good"]
    assert u.sub is not None
    d = Doctor(oci, u)
    xdg = xdg_dir(d)
    src = d.user_dir("src")
    mnt = d.user_dir("mnt")
    local = d.user_dir("local")
    # unprivileged libfuse needs to open /dev/fuse (0600 here) before it hands
    # the mount to fusermount3: give it a 0666 node, in this namespace only
    fuse = _node(oci, "fuse", 10, 229, 0o666)
    as_user = f"runuser -u {u.name} --"
    wrap = (f"mount --bind {fuse} /dev/fuse\n"
            f"{as_user} bindfs --no-allow-other {src} {mnt}\n"
            f"trap '{as_user} fusermount3 -u {mnt}' EXIT")
    # First, the premise: in a user namespace with the user's subordinate ids,
    # chown to one of them fails on the FUSE mount and works on the local dir.
    probe = (f"{wrap}\n"
             f"{as_user} unshare --map-root-user --map-auto sh -c '"
             f"touch {mnt}/x && chown 1:1 {mnt}/x; echo fuse=$?; rm -f {mnt}/x; "
             f"touch {local}/x && chown 1:1 {local}/x; echo local=$?; rm -f {local}/x' 2>&1\n")
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", probe],
                       capture_output=True, text=True, timeout=60)
    assert "fuse=1" in p.stdout and "local=0" in p.stdout, p.stdout + p.stderr
    assert "Operation not permitted" in p.stdout

    # doctor's script cannot `exec` (the trap must unmount): run it as a child
    script = f"{wrap}\n{shlex.join(d.command(str(mnt), str(local), xdg=xdg))}\n"
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120, env={"PATH": BASE_PATH})
    results: list[dict[str, Any]] = json.loads(p.stdout)
    d.results = results
    assert p.returncode == 1, str(d) + p.stderr
    r = d.get(f"storage {mnt}")
    assert r["status"] == "fail", str(d)
    assert r["found"].startswith("fuse"), r
    assert "lchown" in r["found"] and "Operation not permitted" in r["found"]
    assert f"subordinate uid {u.sub[0]}" in r["found"]
    assert "storage.conf" in r["fix"] and "graphroot" in r["fix"]
    assert d.status(f"storage {local}") == "ok"
    assert [f["name"] for f in d.failures()] == [f"storage {mnt}"]
    assert os.listdir(src) == []        # the probe left nothing behind


# -- cgroups: delegation decided as `create` decides it ------------------------------------------

# The v1 hierarchies unmounted (a v2 view of this hybrid machine, as in
# test_cgroup_v2.py), and the shell moved into $1 (if given) before doctor.
V2_VIEW = ("for m in $(grep ' - cgroup ' /proc/self/mountinfo | cut -d' ' -f5); do umount \"$m\"; done\n"
           "{move}")


def _v2_view(leaf: Path | None) -> str:
    return V2_VIEW.format(move=f"echo $$ > {leaf}/cgroup.procs" if leaf else ":")


def test_cgroups_check_follows_delegation(oci: Env, users: dict[str, SubidUser]) -> None:
    """On a v2 host the check reports what create would do for this caller
    (Manager.delegated_paths): a cgroup beside its own in a delegated
    subtree (ok, with the controllers offered there), one below its own
    cgroup when only that is writable (warn: no limits there), or none."""
    from pyoci.cgroups import manager as cgroups

    lay = cgroups.layout()
    if lay.unified is None:
        pytest.skip("needs a cgroup2 mount")
    unified = Path(lay.unified)
    u = users["good"]
    d = Doctor(oci, u)
    xdg = xdg_dir(d)
    top = unified / f"pyoci-it-doc-{oci.token[:8]}"
    (top / "leaf").mkdir(parents=True)
    root_ctl = unified / "cgroup.subtree_control"
    hugetlb_was_on = "hugetlb" in root_ctl.read_text().split()
    try:
        for p in (top, top / "leaf", *top.glob("*/cgroup.*"), *top.glob("cgroup.*")):
            os.chown(p, u.uid, u.gid)
        # delegated: beside the caller's cgroup (leaf), in the subtree
        r = d.run(xdg=xdg, wrap=_v2_view(top / "leaf")).get("cgroups")
        assert r["found"].startswith(f"v2 (unified at {unified}); delegated to you: "
                                     f"containers go to {top}/<id>"), str(d)
        offered = (top / "cgroup.controllers").read_text().split()
        if offered:
            assert r["status"] == "ok" and r["found"].endswith(f"controllers: {' '.join(offered)}"), str(d)
        else:
            assert r["status"] == "warn" and "is offered no controller" in r["found"], str(d)
            assert r["fix"] == f"as root: echo '+cpu +memory +pids' > {unified}/cgroup.subtree_control"
        if "hugetlb" in (unified / "cgroup.controllers").read_text().split() and not offered:
            root_ctl.write_text("+hugetlb")
            r = d.run(xdg=xdg, wrap=_v2_view(top / "leaf")).get("cgroups")
            assert r["status"] == "ok" and r["found"].endswith("controllers: hugetlb"), str(d)
        # only its own cgroup (top) writable, not the parent: below it, without limits
        r = d.run(xdg=xdg, wrap=_v2_view(top)).get("cgroups")
        assert r["status"] == "warn", str(d)
        assert f"only your own cgroup {top} is writable, not its parent: containers go to " \
               f"{top}/<id>" in r["found"], str(d)
        assert r["fix"].startswith(f"start pyoci from a leaf of your cgroup: mkdir {top}/shell"), str(d)
        # nothing delegated: the caller's cgroup is root's
        r = d.run(xdg=xdg, wrap=_v2_view(None)).get("cgroups")
        assert r["status"] == "warn" and "no cgroup v2 subtree is delegated to you" in r["found"], str(d)
        assert "Delegate=yes" in r["fix"], str(d)
        # the caller's own view (hybrid here) is reported as before
        r = d.run(xdg=xdg).get("cgroups")
        assert r["status"] == "warn" and r["found"].startswith(("hybrid", "v1", "v2")), str(d)
        # root on the v2 view
        r = Doctor(oci, None).run(wrap=_v2_view(None)).get("cgroups")
        assert r == {"name": "cgroups", "status": "ok", "fix": "",
                     "found": f"v2 (unified at {unified}); root can create cgroups"}
    finally:
        for sub in (top / "leaf", top):
            if sub.exists():
                sub.rmdir()
        if not hugetlb_was_on:
            try:
                root_ctl.write_text("-hugetlb")
            except OSError:
                pass
    assert not top.exists()
