"""Subordinate id ranges: /etc/subuid and /etc/subgid.

Each line of those files is ``OWNER:START:COUNT``: OWNER (a login name, or a
uid written as a number) may map host ids START .. START+COUNT-1 into its
user namespaces through the setuid helpers newuidmap and newgidmap.  For
both files OWNER is a *user* (subgid(5): "login name or UID").

    ranges_for(user, uid, kind="uid") -> [(start, count), ...]
    check_mapping(lines, own_id, ranges, kind, user=..., uid=...)

``check_mapping`` does, before newuidmap/newgidmap run, the check those
helpers do (shadow's verify_range): every hostID range of a config's
uidMappings/gidMappings must be the caller's own id (size 1) or lie inside
the caller's subordinate ranges (adjacent ranges may be combined).  Its
error names the config field, the host range, what the file holds for the
user and the command that fixes it.

Import-light: only os and pyoci.errors at import time.
"""

from __future__ import annotations

import os

from pyoci.errors import PyociError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

FILES = {"uid": "/etc/subuid", "gid": "/etc/subgid"}
# What useradd gives a new user (SUB_UID_COUNT), and what images expect:
# ids 0..65535 (nobody is 65534).
RECOMMENDED_COUNT = 65536
# useradd's default SUB_UID_MIN: where suggested ranges start.
FIRST_SUGGESTED = 100000


class Entry:
    """One line of /etc/subuid or /etc/subgid."""

    __slots__ = ("owner", "start", "count", "lineno")

    def __init__(self, owner: str, start: int, count: int, lineno: int = 0) -> None:
        self.owner = owner
        self.start = start
        self.count = count
        self.lineno = lineno

    @property
    def end(self) -> int:
        """Last id of the range (inclusive)."""
        return self.start + self.count - 1

    def matches(self, user: str | None, uid: int | None) -> bool:
        return (user is not None and self.owner == user) or (uid is not None and self.owner == str(uid))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Entry) and (self.owner, self.start, self.count)
                == (other.owner, other.start, other.count))

    def __repr__(self) -> str:
        return f"Entry({self.owner!r}, {self.start}, {self.count})"


def parse(text: str) -> list[Entry]:
    """The entries of a subuid/subgid file.  Blank lines, comments and
    malformed lines are skipped (shadow ignores them too)."""
    out: list[Entry] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not parts[0]:
            continue
        owner, start_s, count_s = parts
        if not (start_s.isdigit() and count_s.isdigit()):
            continue
        start, count = int(start_s), int(count_s)
        if count == 0:
            continue
        out.append(Entry(owner, start, count, n))
    return out


def path_for(kind: str) -> str:
    return FILES[kind]


def read(kind: str = "uid", path: str | None = None) -> list[Entry]:
    """Entries of /etc/sub{kind} (or ``path``); [] when the file is missing."""
    try:
        with open(path or FILES[kind], encoding="utf-8", errors="replace") as f:
            return parse(f.read())
    except FileNotFoundError:
        return []


def entries_for(entries: Iterable[Entry], user: str | None, uid: int | None) -> list[Entry]:
    return [e for e in entries if e.matches(user, uid)]


def ranges_for(user: str | None, uid: int | None, kind: str = "uid", *, path: str | None = None,
               entries: Iterable[Entry] | None = None) -> list[tuple[int, int]]:
    """(start, count) of every range /etc/sub{kind} grants ``user``, found by
    login name or by uid, in file order."""
    if entries is None:
        entries = read(kind, path)
    return [(e.start, e.count) for e in entries_for(entries, user, uid)]


def merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted (start, count) with overlapping and adjacent ranges combined."""
    out: list[list[int]] = []
    for start, count in sorted(r for r in ranges if r[1] > 0):
        if out and start <= out[-1][0] + out[-1][1]:
            out[-1][1] = max(out[-1][1], start + count - out[-1][0])
        else:
            out.append([start, count])
    return [(s, c) for s, c in out]


def covers(ranges: Iterable[tuple[int, int]], start: int, count: int) -> bool:
    """True if [start, start+count) lies inside the union of ``ranges``."""
    if count <= 0:
        return False
    for s, c in merge(ranges):
        if s <= start and start + count <= s + c:
            return True
    return False


def uncovered(ranges: Iterable[tuple[int, int]], start: int, count: int) -> list[tuple[int, int]]:
    """The parts of [start, start+count) outside ``ranges``, as (start, count)."""
    out: list[tuple[int, int]] = []
    pos, end = start, start + count
    for s, c in merge(ranges):
        if s + c <= pos:
            continue
        if s >= end:
            break
        if s > pos:
            out.append((pos, s - pos))
        pos = max(pos, s + c)
        if pos >= end:
            break
    if pos < end:
        out.append((pos, end - pos))
    return out


def overlaps(entries: Iterable[Entry], start: int, count: int, *, user: str | None = None,
             uid: int | None = None) -> list[Entry]:
    """Entries of *other* owners that share an id with [start, start+count)."""
    return [e for e in entries if not e.matches(user, uid)
            and e.start < start + count and start < e.start + e.count]


def free_start(entries: Iterable[Entry], count: int = RECOMMENDED_COUNT,
               at_least: int = FIRST_SUGGESTED) -> int:
    """The lowest start >= ``at_least`` of ``count`` ids no entry uses (as
    useradd picks a new user's range)."""
    start = at_least
    for s, c in merge((e.start, e.count) for e in entries):
        if s + c <= start:
            continue
        if s >= start + count:
            break
        start = s + c
    return start


def show(ranges: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"{s}-{s + c - 1} ({c} ids)" for s, c in ranges)


def fix_text(kind: str, user: str, start: int, count: int) -> str:
    """The command that grants ``user`` ids start..start+count-1 (and the line it writes)."""
    opt = "--add-subuids" if kind == "uid" else "--add-subgids"
    return (f"as root: `usermod {opt} {start}-{start + count - 1} {user}`, "
            f"or add the line `{user}:{start}:{count}` to {FILES[kind]}")


def _user_label(user: str | None, uid: int | None) -> str:
    if user and uid is not None:
        return f"user {user} (uid {uid})"
    return f"user {user}" if user else f"uid {uid}"


def check_mapping(lines: Sequence[tuple[int, int, int]], own_id: int, ranges: Sequence[tuple[int, int]],
                  kind: str, *, user: str | None = None, uid: int | None = None,
                  entries: Sequence[Entry] | None = None, where: str | None = None) -> None:
    """Raise PyociError unless every mapping (containerID, hostID, size) is
    the caller's own id (size 1) or inside ``ranges`` (the caller's
    subordinate ranges from /etc/sub{kind}).

    ``user``/``uid`` name the caller in the message; ``entries`` (the whole
    file) lets the fix avoid ranges other users own; ``where`` names the
    source of ``ranges`` when it is not the file."""
    path = where or FILES[kind]
    who = _user_label(user, uid)
    for i, (cid, host, size) in enumerate(lines):
        if size == 1 and host == own_id:
            continue
        if covers(ranges, host, size):
            continue
        field = f"$.linux.{kind}Mappings[{i}]"
        span = (f"host {kind}s {host}-{host + size - 1} are" if size != 1 else f"host {kind} {host} is")
        if ranges:
            found = f"{who} has {show(ranges)} in {path}"
        else:
            found = f"no entry for {who} in {path}"
        if size == 1 and host != own_id:
            found += f"; your own {kind} is {own_id}"
        taken = overlaps(entries or (), host, size, user=user, uid=uid)
        name = user or str(uid)
        fixes = []
        fit = next((s for s, c in merge(ranges) if c >= size), None)
        if fit is not None:
            fixes.append(f"map hostID {fit} (inside your range) instead")
        if size == 1 and host != own_id:
            fixes.append(f"map hostID {own_id} (your own {kind}) with size 1")
        if host < FIRST_SUGGESTED:
            # Ids below useradd's SUB_UID_MIN belong to accounts: never
            # suggest delegating them.
            if fit is None and size > 1:
                want = max(size, RECOMMENDED_COUNT)
                start = free_start(entries or (), want)
                fixes.append(f"get a range, {fix_text(kind, name, start, want)}, and map hostID {start}")
        elif taken:
            e = taken[0]
            found += f"; {e.start}-{e.end} belongs to {e.owner}"
            want = max(size, RECOMMENDED_COUNT)
            start = free_start(entries or (), want)
            fixes.append(f"get a free range, {fix_text(kind, name, start, want)}, and map hostID {start}")
        else:
            gaps = uncovered(ranges, host, size)
            g_start, g_count = gaps[0] if len(gaps) == 1 else (host, size)
            fixes.append(fix_text(kind, name, g_start, g_count))
        hint = "; or ".join(fixes)
        raise PyociError(
            f"config.json {field} (containerID {cid}, hostID {host}, size {size}): "
            f"{span} not delegated to you: {found}",
            op=f"new{kind}map", field=field, path=path, hint=hint)


def caller() -> tuple[str | None, int, int]:
    """(login name or None, uid, primary gid) as newuidmap sees the caller:
    getpwuid(getuid())."""
    import pwd

    uid = os.getuid()
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return None, uid, os.getgid()
    return pw.pw_name, uid, pw.pw_gid


def nss_source(path: str = "/etc/nsswitch.conf") -> str:
    """Where newuidmap looks subordinate ids up: the first source of the
    ``subid:`` line of nsswitch.conf (shadow >= 4.9), "files" without one."""
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition("#")[0].partition(":")
                if key.strip() == "subid" and rest.split():
                    return rest.split()[0]
    except OSError:
        pass
    return "files"


def getsubids(user: str, kind: str) -> list[tuple[int, int]] | None:
    """Ranges from shadow's getsubids (which asks the nsswitch source);
    None when it cannot tell."""
    import subprocess

    args = ["getsubids"] + (["-g"] if kind == "gid" else []) + [user]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    out = []
    for line in r.stdout.splitlines():
        parts = line.split()   # "0: alice 100000 65536"
        if len(parts) == 4 and parts[2].isdigit() and parts[3].isdigit():
            out.append((int(parts[2]), int(parts[3])))
    return out


def check_idmap(uid_lines: Sequence[tuple[int, int, int]], gid_lines: Sequence[tuple[int, int, int]]) -> None:
    """check_mapping for both maps of the calling user.  Ranges come from
    /etc/subuid and /etc/subgid, or, where nsswitch.conf sends subid lookups
    elsewhere (sss, ldap), from getsubids; when that cannot answer the check
    is left to newuidmap/newgidmap."""
    user, uid, gid = caller()
    src = nss_source()
    for kind, lines, own in (("uid", uid_lines, uid), ("gid", gid_lines, gid)):
        if src == "files":
            entries = read(kind)
            check_mapping(lines, own, ranges_for(user, uid, entries=entries), kind, user=user, uid=uid,
                          entries=entries)
            continue
        ranges = getsubids(user or str(uid), kind)
        if ranges is None:
            return
        check_mapping(lines, own, ranges, kind, user=user, uid=uid,
                      where=f"the subid database ({src}, nsswitch.conf)")


def needed_entries(lines: Sequence[tuple[int, int, int]], own_id: int, kind: str, user: str | None,
                   uid: int | None) -> str:
    """The /etc/sub{kind} lines a map needs (its hostID ranges other than
    the caller's own id), e.g. ``alice:100000:65536``."""
    name = user or str(uid)
    need = [f"{name}:{h}:{s}" for _c, h, s in lines if not (s == 1 and h == own_id)]
    return ", ".join(need) if need else "none (only your own id)"
