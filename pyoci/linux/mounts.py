"""Host-side mount bookkeeping."""

from __future__ import annotations

MNT_DETACH = 2


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and i + 4 <= len(field):
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mountinfo() -> list[tuple[str, str, str, str]]:
    """(mount point, fstype, source, super options) of each mount in our
    mount namespace, in /proc/self/mountinfo's order; [] if unreadable."""
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        left, _, right = line.partition(" - ")
        lf = left.split()
        rf = right.split()
        if len(lf) < 5 or len(rf) < 2:
            continue
        out.append((_unescape(lf[4]), rf[0], _unescape(rf[1]), rf[2] if len(rf) > 2 else ""))
    return out


def mounts_under(path: str) -> list[str]:
    """Mount points at or below path in our mount namespace, deepest first."""
    prefix = path.rstrip("/") + "/"
    found = [point for point, _t, _s, _o in mountinfo() if point == path or point.startswith(prefix)]
    return sorted(found, key=len, reverse=True)


def unmount_under(path: str) -> None:
    """Detach every mount at or below path (for containers without a mount
    namespace, whose mounts were made in ours)."""
    from pyoci.native._helper import lib

    for _ in range(3):
        points = mounts_under(path)
        if not points:
            return
        for p in points:
            lib.pyoci_umount(p.encode(), MNT_DETACH)
