"""Users for the tests that run pyoci unprivileged.

* ``test_user`` (session fixture): the long-lived user ``pyoci-test-user``
  (made with useradd -m if missing, given the subordinate range
  200000:65536 in /etc/subuid and /etc/subgid if it has none; both are left
  in place afterwards), with ``Rootless``: a directory it owns holding its
  bundles, state root and XDG dir.  The user runs the repository's .venv
  directly: the checkout and .venv must be world-traversable (0755); if they
  are not, the fixture skips rather than changing permissions.
* ``users`` (module fixture): three throwaway users with fresh names
  (removed with userdel -r afterwards, which also drops their /etc/subuid
  and /etc/subgid lines):

    good   65536 subordinate uids and gids
    none   no entry at all
    small  1000 uids and 1000 gids

  Their ranges are random 65536-aligned blocks above 10,000,000 that no line
  of /etc/subuid or /etc/subgid uses (other users on the machine, and other
  test sessions, keep theirs).  usermod takes shadow's lock on the files.

Both fixtures are registered for every test directory by tests/conftest.py.
"""

from __future__ import annotations

import os
import pwd
import random
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import PYOCI, Bundle, Env, HostUser

from pyoci.linux import subid

USER = "pyoci-test-user"
SUB_START, SUB_COUNT = 200000, 65536


def _ensure_subid(path: str, name: str) -> tuple[int, int]:
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        lines = []
    for ln in lines:
        parts = ln.split(":")
        if len(parts) == 3 and parts[0] == name:
            return int(parts[1]), int(parts[2])
    with open(path, "a") as f:
        f.write(f"{name}:{SUB_START}:{SUB_COUNT}\n")
    return SUB_START, SUB_COUNT


@pytest.fixture(scope="session")
def test_user() -> HostUser:
    if os.geteuid() != 0:
        pytest.skip("needs root to create the test user")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", USER], check=True, capture_output=True)
        pw = pwd.getpwnam(USER)
    _ensure_subid("/etc/subuid", USER)
    _ensure_subid("/etc/subgid", USER)
    user = HostUser(USER, pw.pw_uid, pw.pw_gid, pw.pw_dir)
    r = subprocess.run(["runuser", "-u", USER, "--", PYOCI, "--version"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"{USER} cannot run {PYOCI}: {r.stderr.strip()}")
    return user


def subids(user: HostUser, path: str) -> tuple[int, int]:
    for ln in Path(path).read_text().splitlines():
        parts = ln.split(":")
        if len(parts) == 3 and parts[0] == user.name:
            return int(parts[1]), int(parts[2])
    raise AssertionError(f"no {path} entry for {user.name}")


class Rootless:
    """A directory the user owns, holding its bundles, state root and XDG dir."""

    def __init__(self, oci: Env, user: HostUser) -> None:
        self.oci = oci
        self.user = user
        self.home = oci.mkdir("user", 0o755)
        os.chown(self.home, user.uid, user.gid)
        self.root = self.home / "state"
        oci.roots.append(self.root)
        self.xdg = self.home / "xdg"
        self.xdg.mkdir(mode=0o700)
        os.chown(self.xdg, user.uid, user.gid)

    def bundle(self, args: list[str], name: str | None = None) -> Bundle:
        name = name or f"bundle{len(self.oci.bundles) + 1}"
        b = self.oci.bundle(args, name=f"user/{name}", rootless=True, uid=self.user.uid, gid=self.user.gid)
        return b

    def save(self, b: Bundle) -> None:
        b.save()
        b.chown_all(self.user.uid, self.user.gid)

    def outdir(self, name: str = "out") -> Path:
        d = self.home / name
        d.mkdir(mode=0o755)
        os.chown(d, self.user.uid, self.user.gid)
        return d

    def pyoci(self, *args: str, **kw):  # type: ignore[no-untyped-def]
        return self.oci.pyoci(*args, root=self.root, user=self.user,
                              env={"XDG_RUNTIME_DIR": str(self.xdg), **kw.pop("env", {})}, **kw)


class SubidUser:
    """A throwaway user and what /etc/subuid, /etc/subgid give it."""

    def __init__(self, name: str, uid: int, gid: int, home: str, sub: tuple[int, int] | None) -> None:
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.sub = sub  # (start, count) in both files, or None

    def __repr__(self) -> str:
        return f"SubidUser({self.name}, uid={self.uid}, sub={self.sub})"


def free_block(count: int) -> int:
    taken = subid.read("uid") + subid.read("gid")
    rng = random.Random(uuid.uuid4().int)
    for _ in range(1000):
        start = 10_000_000 + rng.randrange(0, 7000) * 65536
        if not subid.overlaps(taken, start, count):
            return start
    raise AssertionError("no free subordinate id block found")


def create_user(tag: str, count: int | None) -> SubidUser:
    name = f"pyoci-{tag}-{uuid.uuid4().hex[:6]}"
    # -K SUB_*_COUNT=0: no automatic range (Debian's useradd gives one).
    subprocess.run(["useradd", "--user-group", "--create-home", "--shell", "/bin/sh",
                    "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    pw = pwd.getpwnam(name)
    sub = None
    try:
        if count:
            start = free_block(count)
            span = f"{start}-{start + count - 1}"
            subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, name],
                           check=True, capture_output=True)
            sub = (start, count)
        assert subid.ranges_for(name, pw.pw_uid, "uid") == ([sub] if sub else [])
        assert subid.ranges_for(name, pw.pw_uid, "gid") == ([sub] if sub else [])
    except BaseException:
        remove_user(name)
        raise
    return SubidUser(name, pw.pw_uid, pw.pw_gid, pw.pw_dir, sub)


def remove_user(name: str) -> None:
    r = subprocess.run(["userdel", "-r", name], capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["userdel", "-f", "-r", name], capture_output=True)


@pytest.fixture(scope="module")
def users() -> Iterator[dict[str, SubidUser]]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create users")
    made: dict[str, SubidUser] = {}
    try:
        made["good"] = create_user("g", 65536)
        made["none"] = create_user("n", None)
        made["small"] = create_user("s", 1000)
        r = subprocess.run(["runuser", "-u", made["good"].name, "--", PYOCI, "--version"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"a new user cannot run {PYOCI}: {r.stderr.strip()}")
        yield made
    finally:
        for u in made.values():
            remove_user(u.name)
        for u in made.values():
            assert not subid.ranges_for(u.name, u.uid, "uid"), f"{u.name} left in /etc/subuid"
