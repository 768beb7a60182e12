"""plan.build._defer_readonly: a read-only mount with later mounts below it
is mounted writable and remounted read-only at the end."""

from __future__ import annotations

from pyoci.linux.consts import MS_BIND, MS_NOSUID, MS_RDONLY
from pyoci.plan.build import Op, _defer_readonly


def _mount(target: str, flags: int = 0, remount: int = 0, extra: list[str] | None = None) -> Op:
    return Op("mount", target, f"mount {target} (test)", source="x", fstype="tmpfs", mflags=flags,
              remount=remount, flags=extra)


def test_only_read_only_mounts_with_later_mounts_below_them_are_deferred() -> None:
    ops = [
        _mount("/dev", MS_RDONLY | MS_NOSUID),          # /dev/pts comes later: deferred
        _mount("/devices", MS_RDONLY),                  # a prefix of nothing later ("/devices/")
        _mount("/dev/pts"),
        _mount("/sys", MS_RDONLY),                      # nothing below it
        _mount("/etc/x", MS_BIND, remount=MS_RDONLY),   # a read-only bind, /etc/x/y later
        _mount("/etc/x/y", MS_BIND),
        _mount("/ro", MS_RDONLY, extra=["recursive_ro"]),  # left to its own rro
        _mount("/ro/sub"),
        _mount("/late", MS_RDONLY),
        _mount("/x\n/late/y"),                         # a newline in a name is no path boundary
        _mount("/dev/shm"),                             # below /dev, after other ops: still seen
    ]
    later = _defer_readonly(ops)
    assert [(o.kind, o.target) for o in later] == [("remount", "/dev"), ("remount", "/etc/x")]
    assert later[0].mflags == MS_RDONLY | MS_NOSUID and later[1].mflags == MS_RDONLY
    by = {o.target: o for o in ops}
    assert not by["/dev"].mflags & MS_RDONLY and not by["/etc/x"].remount & MS_RDONLY
    for kept in ("/devices", "/sys", "/ro", "/late"):
        assert by[kept].mflags & MS_RDONLY, kept


def test_a_mount_below_an_earlier_one_does_not_defer_it() -> None:
    ops = [_mount("/a/b"), _mount("/a", MS_RDONLY)]
    assert _defer_readonly(ops) == [] and ops[1].mflags & MS_RDONLY
