"""Build a minimal OCI bundle around Debian's static busybox.

    make_bundle(path, args=None, *, rootless=False, terminal=False, config_overrides=None) -> str

writes ``path/rootfs`` and ``path/config.json`` and returns ``path`` (absolute).

The rootfs holds a copy of ``/bin/busybox`` (Debian package busybox-static:
it must be statically linked, since the rootfs has no libc), one symlink
``/bin/APPLET -> busybox`` for every applet ``busybox --list`` names, the
directories proc sys dev etc tmp root, and /etc/passwd and /etc/group with
root (0) and nobody (65534).

config.json is ``pyoci.cli.spec.default_spec(rootless, euid, egid, args,
terminal)``; with ``rootless=True`` the caller's effective uid and gid are
mapped to root in the container.  ``config_overrides`` is merged into it
recursively: a dict value merges into the dict already there, any other value
(lists included) replaces it, and ``None`` removes the key.

Works for an unprivileged caller (the files then belong to that caller).

Command line::

    python -m tools.busybox DIR [--rootless] [--terminal] [-- ARGS...]
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from typing import Any

BUSYBOX = "/bin/busybox"
ROOTFS_DIRS = ("bin", "proc", "sys", "dev", "etc", "tmp", "root")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"

_PT_INTERP = 3


class BundleError(Exception):
    """The bundle cannot be built (busybox missing or dynamic, path in use)."""


def is_static_elf(path: str) -> bool:
    """True if ``path`` is an ELF executable with no program interpreter
    (PT_INTERP), i.e. it runs without a dynamic loader or libc."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if len(ident) < 64 or ident[:4] != b"\x7fELF":
            return False
        is64 = ident[4] == 2
        end = "<" if ident[5] == 1 else ">"
        if is64:
            phoff, = struct.unpack_from(end + "Q", ident, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", ident, 54)
        else:
            phoff, = struct.unpack_from(end + "I", ident, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", ident, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack_from(end + "I", table, i * phentsize)
        if p_type == _PT_INTERP:
            return False
    return True


def applets(busybox: str = BUSYBOX) -> list[str]:
    """The applet names ``busybox --list`` prints (without "busybox" itself)."""
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    return [a for a in out.split() if a and a != "busybox" and "/" not in a]


def populate_rootfs(rootfs: str, busybox: str = BUSYBOX) -> None:
    """Fill ``rootfs`` (created if missing) with busybox, its applet links,
    the usual top-level directories and /etc/passwd, /etc/group."""
    if not os.path.exists(busybox):
        raise BundleError(f"{busybox} not found (hint: apt-get install busybox-static)")
    if not is_static_elf(busybox):
        raise BundleError(f"{busybox} is dynamically linked; the rootfs has no libc "
                          "(hint: apt-get install busybox-static)")
    os.makedirs(rootfs, exist_ok=True)
    os.chmod(rootfs, 0o755)
    for d in ROOTFS_DIRS:
        p = os.path.join(rootfs, d)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, 0o755)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    os.chmod(os.path.join(rootfs, "root"), 0o700)
    target = os.path.join(rootfs, "bin", "busybox")
    shutil.copyfile(busybox, target)
    os.chmod(target, 0o755)
    for name in applets(busybox):
        link = os.path.join(rootfs, "bin", name)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    for name, text in (("passwd", PASSWD), ("group", GROUP)):
        p = os.path.join(rootfs, "etc", name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o644)


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Merge ``overrides`` into ``base`` in place (see the module docstring)."""
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def make_config(args: list[str] | None = None, *, rootless: bool = False, terminal: bool = False,
                config_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    from pyoci.cli.spec import default_spec

    uid, gid = (os.geteuid(), os.getegid()) if rootless else (0, 0)
    config = default_spec(rootless, uid, gid, list(args) if args else None, terminal)
    if config_overrides:
        merge(config, json.loads(json.dumps(config_overrides)))
    return config


def make_bundle(path: str | os.PathLike[str], args: list[str] | None = None, *, rootless: bool = False,
                terminal: bool = False, config_overrides: dict[str, Any] | None = None) -> str:
    """Build a busybox bundle at ``path`` (created if missing; it may exist but
    must not already hold rootfs/ or config.json).  Returns the absolute path.

    ``args`` is process.args (default ``["sh"]``)."""
    bundle = os.path.abspath(os.fspath(path))
    rootfs = os.path.join(bundle, "rootfs")
    config_path = os.path.join(bundle, "config.json")
    for p in (rootfs, config_path):
        if os.path.lexists(p):
            raise BundleError(f"{p} already exists")
    config = make_config(args, rootless=rootless, terminal=terminal, config_overrides=config_overrides)
    if not os.path.isdir(bundle):
        os.makedirs(bundle)
        os.chmod(bundle, 0o755)
    populate_rootfs(rootfs)
    with open(config_path, "x") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return bundle


USAGE = "usage: python -m tools.busybox DIR [--rootless] [--terminal] [-- ARGS...]"


def main(argv: list[str]) -> int:
    args: list[str] | None = None
    if "--" in argv:
        i = argv.index("--")
        argv, args = argv[:i], argv[i + 1:]
    rootless = terminal = False
    dirs = []
    for a in argv:
        if a == "--rootless":
            rootless = True
        elif a == "--terminal":
            terminal = True
        elif a in ("-h", "--help"):
            print(USAGE)
            return 0
        elif a.startswith("-"):
            print(f"unknown flag {a!r}\n{USAGE}", file=sys.stderr)
            return 2
        else:
            dirs.append(a)
    if len(dirs) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        print(make_bundle(dirs[0], args or None, rootless=rootless, terminal=terminal))
    except (BundleError, OSError, subprocess.CalledProcessError) as e:
        print(f"busybox bundle: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
