"""Rootless with subordinate id ranges, for real: users made with useradd,
ranges given with usermod, containers run through runuser with a two-line
map (0 -> the user's own id, 1.. -> its subordinate range) written by
newuidmap/newgidmap.

The ``users`` fixture (tests/helpers/users.py) gives three throwaway users:
``good`` with 65536 subordinate uids and gids, ``none`` with no entry, and
``small`` with 1000 of each.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers.ocitest import Bundle, Env, Result
from helpers.users import SubidUser, free_block

CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID"]


class AsUser:
    """A directory the user owns with its bundles, state root and XDG dir."""

    def __init__(self, oci: Env, user: SubidUser) -> None:
        self.oci = oci
        self.user = user
        self.home = oci.mkdir(f"as-{user.name}", 0o755)
        os.chown(self.home, user.uid, user.gid)
        self.xdg = self.home / "xdg"
        self.xdg.mkdir(mode=0o700)
        os.chown(self.xdg, user.uid, user.gid)
        self.root = self.xdg / "pyoci"
        oci.roots.append(self.root)

    def dir(self, name: str, mode: int = 0o755) -> Path:
        d = self.home / name
        d.mkdir(mode=mode)
        os.chmod(d, mode)
        os.chown(d, self.user.uid, self.user.gid)
        return d

    def bundle(self, script: str, uid_lines: list[tuple[int, int, int]],
               gid_lines: list[tuple[int, int, int]] | None = None) -> Bundle:
        u = self.user
        b = self.oci.bundle(["sh", "-c", script], name=f"as-{u.name}/bundle{len(self.oci.bundles) + 1}",
                            rootless=True, uid=u.uid, gid=u.gid)
        b.linux["uidMappings"] = [{"containerID": c, "hostID": h, "size": s} for c, h, s in uid_lines]
        b.linux["gidMappings"] = [{"containerID": c, "hostID": h, "size": s}
                                  for c, h, s in (gid_lines or uid_lines)]
        caps = b.process["capabilities"]
        for k in ("bounding", "effective", "permitted"):
            caps[k] = sorted(set(caps[k]) | set(CAPS))
        return b

    def run(self, b: Bundle, cid: str | None = None) -> Result:
        b.save()
        b.chown_all(self.user.uid, self.user.gid)
        return self.oci.pyoci("run", "--bundle", str(b.path), cid or self.oci.cid(), root=self.root,
                              user=self.user, env={"XDG_RUNTIME_DIR": str(self.xdg)})  # type: ignore[arg-type]


def two_line_map(u: SubidUser, count: int | None = None,
                 own: int | None = None) -> list[tuple[int, int, int]]:
    assert u.sub is not None or count is not None
    start = u.sub[0] if u.sub else 50_000_000
    return [(0, u.uid if own is None else own, 1), (1, start, count or (u.sub[1] if u.sub else 65536))]


def _map_lines(text: str) -> list[list[str]]:
    return [ln.split() for ln in text.strip().splitlines()]


def test_two_ranges_map_chown_and_nobody(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["good"]
    start, count = u.sub or (0, 0)
    a = AsUser(oci, u)
    data = a.dir("data")
    (data / "rootfile").write_text("host root's\n")
    os.chown(data / "rootfile", 0, 0)
    script = ("cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u; id -g; "
              "touch /data/f && chown 1000:1000 /data/f && stat -c %u:%g /data/f; "
              "stat -c %u:%g /data/rootfile; stat -c %u:%g /bin/busybox; "
              "mkdir /data/top && chown 65535:65535 /data/top && stat -c %u:%g /data/top")
    b = a.bundle(script, [(0, u.uid, 1), (1, start, count)], [(0, u.gid, 1), (1, start, count)])
    b.bind(data, "/data")
    r = a.run(b)
    assert r.rc == 0, str(r)
    uid_map, gid_map, rest = r.stdout.split("--\n")
    assert _map_lines(uid_map) == [["0", str(u.uid), "1"], ["1", str(start), str(count)]]
    assert _map_lines(gid_map) == [["0", str(u.gid), "1"], ["1", str(start), str(count)]]
    lines = rest.split()
    assert lines[:2] == ["0", "0"]
    assert lines[2] == "1000:1000"                 # chown inside worked
    assert lines[3] == "65534:65534"               # host root is unmapped: nobody
    assert lines[4] == "0:0"                       # the user's own files are root's
    assert lines[5] == "65535:65535"               # the last id of the range
    st = os.lstat(data / "f")
    assert (st.st_uid, st.st_gid) == (start + 999, start + 999)
    st = os.lstat(data / "top")
    assert (st.st_uid, st.st_gid) == (start + 65534, start + 65534)
    assert os.lstat(data / "rootfile").st_uid == 0


def test_process_runs_as_a_subordinate_id(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["good"]
    start, count = u.sub or (0, 0)
    a = AsUser(oci, u)
    shared = a.dir("shared", 0o1777)
    b = a.bundle("id -u; id -g; touch /shared/by-1000",
                 two_line_map(u))
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.bind(shared, "/shared")
    r = a.run(b)
    assert r.rc == 0, str(r)
    assert r.stdout.split()[:2] == ["1000", "1000"]
    st = os.lstat(shared / "by-1000")
    assert (st.st_uid, st.st_gid) == (start + 999, start + 999)


def _assert_nothing_left(oci: Env, a: AsUser) -> None:
    assert not a.root.exists() or os.listdir(a.root) == [], os.listdir(a.root)
    from helpers.ocitest import find_process_leaks

    assert find_process_leaks(oci) == []


def _one_line(r: Result) -> str:
    lines = r.err_lines
    assert len(lines) == 1, f"expected one stderr line:\n{r}"
    print(lines[0])
    return lines[0]


def test_no_range_gets_a_clear_error_and_nothing_is_left(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["none"]
    a = AsUser(oci, u)
    start = free_block(65536)
    b = a.bundle("echo SHOULD-NOT-RUN", [(0, u.uid, 1), (1, start, 65536)],
                 [(0, u.gid, 1), (1, start, 65536)])
    r = a.run(b)
    assert r.rc != 0, str(r)
    assert "SHOULD-NOT-RUN" not in r.stdout
    line = _one_line(r)
    assert "$.linux.uidMappings[1]" in line
    assert f"host uids {start}-{start + 65535}" in line
    assert f"no entry for user {u.name} (uid {u.uid}) in /etc/subuid" in line
    assert "usermod --add-subuids" in line and u.name in line
    assert f"{u.name}:" in line
    _assert_nothing_left(oci, a)


def test_no_range_own_id_only_still_works(oci: Env, users: dict[str, SubidUser]) -> None:
    # Without subordinate ids the one-line map still runs (written without helpers).
    u = users["none"]
    a = AsUser(oci, u)
    b = a.bundle("cat /proc/self/uid_map", [(0, u.uid, 1)], [(0, u.gid, 1)])
    r = a.run(b)
    assert r.rc == 0, str(r)
    assert _map_lines(r.stdout) == [["0", str(u.uid), "1"]]


def test_too_small_range_names_the_users_range(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["small"]
    start, count = u.sub or (0, 0)
    a = AsUser(oci, u)
    b = a.bundle("echo SHOULD-NOT-RUN", [(0, u.uid, 1), (1, start, 65536)],
                 [(0, u.gid, 1), (1, start, count)])
    r = a.run(b)
    assert r.rc != 0, str(r)
    line = _one_line(r)
    assert "$.linux.uidMappings[1]" in line
    assert f"user {u.name} (uid {u.uid}) has {start}-{start + 999} (1000 ids) in /etc/subuid" in line
    assert f"usermod --add-subuids {start + 1000}-{start + 65535} {u.name}" in line
    _assert_nothing_left(oci, a)


def test_too_small_gid_range_names_subgid(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["small"]
    start, count = u.sub or (0, 0)
    a = AsUser(oci, u)
    b = a.bundle("echo SHOULD-NOT-RUN", [(0, u.uid, 1), (1, start, count)],
                 [(0, u.gid, 1), (1, start, 65536)])
    r = a.run(b)
    assert r.rc != 0, str(r)
    line = _one_line(r)
    assert "$.linux.gidMappings[1]" in line
    assert "/etc/subgid" in line and "--add-subgids" in line
    _assert_nothing_left(oci, a)


def test_small_range_that_fits(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["small"]
    start, count = u.sub or (0, 0)
    a = AsUser(oci, u)
    data = a.dir("data")
    # container ids 0..1000: chown to 1000 works, 2000 is not mapped (EINVAL)
    b = a.bundle("touch /data/a /data/b; chown 1000:1000 /data/a && echo A-OK; "
                 "chown 2000:2000 /data/b 2>&1 || echo B-REFUSED", two_line_map(u))
    b.bind(data, "/data")
    r = a.run(b)
    assert r.rc == 0, str(r)
    assert "A-OK" in r.stdout and "B-REFUSED" in r.stdout
    assert "Invalid argument" in r.stdout
    assert os.lstat(data / "a").st_uid == start + 999
    assert os.lstat(data / "b").st_uid == u.uid


def test_mapping_someone_elses_uid_is_refused(oci: Env, users: dict[str, SubidUser]) -> None:
    u = users["good"]
    a = AsUser(oci, u)
    other = users["none"].uid
    b = a.bundle("echo SHOULD-NOT-RUN", [(0, other, 1)] + two_line_map(u)[1:], two_line_map(u, own=u.gid))
    r = a.run(b)
    assert r.rc != 0, str(r)
    line = _one_line(r)
    assert "$.linux.uidMappings[0]" in line
    assert f"host uid {other} is not delegated to you" in line
    assert f"your own uid is {u.uid}" in line
    assert f"map hostID {u.uid} (your own uid) with size 1" in line
    assert "usermod" not in line
    _assert_nothing_left(oci, a)
