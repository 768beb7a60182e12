"""Host-side mount bookkeeping."""

from __future__ import annotations

MNT_DETACH = 2


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \\ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 1 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(path: str) -> list[str]:
    """Mount points at or below path in our mount namespace, deepest first."""
    prefix = path.rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split()[4])
            if point == path or point.startswith(prefix):
                found.append(point)
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
