"""What config.json may hold before any of it reaches C or the kernel.

Two kinds of check, each a :class:`ConfigError` naming the JSON path:

* :func:`check_strings` walks the whole document once: no string (value or
  object key) may hold a NUL byte, which C would take for its end (a masked
  path "/etc/passwd\\u0000xyz" would mask /etc/passwd), or a lone UTF-16
  surrogate ("\\ud800"), which has no UTF-8 form and so cannot be handed to
  the kernel at all.  It runs on every document pyoci reads (config.json, an
  `exec --process` file, `update --resources`), before the schema.
* :func:`check_numbers` (after the schema, which checks types and the JSON
  Schema's own ranges) narrows every number that reaches a C type or a
  syscall to what that type and syscall can take: a console size is two
  ``unsigned short``, a device number has 12 + 20 bits, an id map must not
  wrap around 2^32, errnoRet is an errno (at most 4095), and so on.  Values
  the kernel would take but mean nothing (umask bits above 0777) are refused
  too, rather than silently cut.

This module is on the path of `create` and `run`: it imports nothing but
pyoci's own errors and jsonfast (tests/unit/test_import_cost.py).
"""

from __future__ import annotations

from pyoci import jsonfast
from pyoci.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# The most bytes pyoci reads from a config.json, an `exec --process` file or
# `update --resources` input: far above any real config (Podman's largest are
# ~30 KiB, a big seccomp profile adds ~50 KiB), far below what would hurt.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024

# Linux dev_t as mknod(2) takes it: a 12-bit major and a 20-bit minor.
MAX_MAJOR = (1 << 12) - 1
MAX_MINOR = (1 << 20) - 1
# The file type bits mknod(2) gets for each linux.devices type.
DEVICE_FILE_TYPES = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}
# Ids as runc takes them (a uid of 4294967295 is (uid_t)-1: "leave unchanged").
MAX_ID = 2147483647
# The Linux kernel's largest errno (MAX_ERRNO); SECCOMP_RET_ERRNO caps its data there.
MAX_ERRNO = 4095
# An `unsigned short` (struct winsize).
MAX_CONSOLE = 65535
# sethostname(2)/setdomainname(2): __NEW_UTS_LEN.
MAX_UTS_NAME = 64
# The `int` of hooks' timeouts in csrc/helper.h (seconds).
MAX_INT = 2147483647


# -- strings -------------------------------------------------------------------


def _bad_string(s: str) -> str | None:
    """Why *s* cannot reach C, or None."""
    if "\x00" in s:
        return "must not contain a NUL byte (\\u0000): C would cut the string there"
    if not s.isascii():
        try:
            s.encode()
        except UnicodeEncodeError as e:
            return (f"is not valid Unicode: a lone surrogate \\u{ord(s[e.start]):04x} at character {e.start} "
                    "(half of a UTF-16 pair) has no UTF-8 form")
    return None


def _find(value: object) -> tuple[list[object], str] | None:
    """The path (innermost first) to the first bad string under *value* and why.

    Only a string with a NUL or a non-ASCII character is looked at closely
    (the common case costs two C-level scans per string)."""
    pairs: Iterable[tuple[Any, Any]]
    if type(value) is dict:
        keys = "".join(value)       # (JSON keys are strings) one scan for all of them
        if "\x00" in keys or not keys.isascii():
            for k in value:
                why = _bad_string(k)
                if why is not None:
                    return [k], "the key " + why
        pairs = value.items()
    elif type(value) is list:
        pairs = enumerate(value)
    elif type(value) is str:
        why = _bad_string(value)
        return None if why is None else ([], why)
    else:
        return None
    for k, x in pairs:
        t = type(x)
        if t is str:
            if "\x00" in x or not x.isascii():
                why = _bad_string(x)
                if why is not None:
                    return [k], why
        elif t is dict or t is list:
            found = _find(x)
            if found is not None:
                found[0].append(k)
                return found
    return None


def json_path(parts: list[object], base: str = "$") -> str:
    """``["linux", "maskedPaths", 0]`` -> ``$.linux.maskedPaths[0]``, printable ASCII only."""
    out = [base]
    for p in parts:
        if isinstance(p, int):
            out.append(f"[{p}]")
        elif isinstance(p, str) and p.isidentifier() and p.isascii():
            out.append("." + p)
        else:
            # jsonfast.dumps writes ASCII: a NUL or a surrogate in a key shows as \u0000 / \ud800.
            out.append("[" + jsonfast.dumps(p) + "]")
    return "".join(out)


def check_strings(doc: object, base: str = "$", raw: bytes | str | None = None) -> None:
    """Refuse the first string with a NUL or a lone surrogate anywhere in *doc*.

    *raw*, the JSON text *doc* was parsed from, allows a shortcut: strict JSON
    has no raw control characters in strings, so a NUL or a surrogate can only
    come from a ``\\u`` escape or a non-ASCII byte; a text with neither needs
    no walk.  (A NUL byte in the text means UTF-16 or -32, whose ASCII
    bytes say nothing.)"""
    if raw is not None and raw.isascii():
        if isinstance(raw, str):
            if "\\u" not in raw and "\x00" not in raw:
                return
        elif b"\\u" not in raw and b"\x00" not in raw:
            return
    try:
        found = _find(doc)
    except RecursionError:
        raise ConfigError(base, "not valid JSON: nested too deeply") from None
    if found is not None:
        parts, why = found
        parts.reverse()
        raise ConfigError(json_path(parts, base), why)


# -- numbers -------------------------------------------------------------------


def _in_range(value: object, lo: int, hi: int, field: str, what: str = "") -> None:
    if type(value) is int and not lo <= value <= hi:
        raise ConfigError(field, f"must be {what or f'{lo} to {hi}'}, not {value}")


def _dict(value: object) -> dict[str, Any]:
    return value if type(value) is dict else {}


def _list(value: object) -> list[Any]:
    return value if type(value) is list else []


def check_process_numbers(process: dict[str, Any], base: str = "$.process") -> None:
    """The numbers of a process object (config.json's or an `exec --process` file's)."""
    size = _dict(process.get("consoleSize"))
    for key in ("height", "width"):
        _in_range(size.get(key), 0, MAX_CONSOLE, f"{base}.consoleSize.{key}")
    user = _dict(process.get("user"))
    _in_range(user.get("umask"), 0, 0o777, f"{base}.user.umask",
              "0 to 511 (0777: permission bits only)")
    _in_range(process.get("oomScoreAdj"), -1000, 1000, f"{base}.oomScoreAdj")


def _check_idmap(entries: object, field: str) -> None:
    for i, m in enumerate(_list(entries)):
        m = _dict(m)
        size = m.get("size")
        _in_range(size, 1, 4294967295, f"{field}[{i}].size")
        if type(size) is not int:
            continue
        for key in ("containerID", "hostID"):
            first = m.get(key)
            if type(first) is int and first + size > 4294967295:
                raise ConfigError(f"{field}[{i}].{key}",
                                  f"{first} + size {size} runs past 4294967294, the last id Linux maps")


def _check_seccomp(seccomp: dict[str, Any], base: str) -> None:
    def errno_ret(value: object, action: object, field: str) -> None:
        if action == "SCMP_ACT_TRACE":
            _in_range(value, 0, 65535, field, "0 to 65535 (the tracer's message number)")
        else:
            _in_range(value, 0, MAX_ERRNO, field, f"an errno from 0 to {MAX_ERRNO}")

    errno_ret(seccomp.get("defaultErrnoRet"), seccomp.get("defaultAction"), f"{base}.defaultErrnoRet")
    for i, rule in enumerate(_list(seccomp.get("syscalls"))):
        rule = _dict(rule)
        errno_ret(rule.get("errnoRet"), rule.get("action"), f"{base}.syscalls[{i}].errnoRet")
        for j, arg in enumerate(_list(rule.get("args"))):
            _in_range(_dict(arg).get("index"), 0, 5, f"{base}.syscalls[{i}].args[{j}].index",
                      "0 to 5 (a system call has six arguments)")


def _check_device(dev: dict[str, Any], i: int) -> None:
    """One linux.devices entry: cheap when every number is in range (a
    privileged Podman config lists a hundred devices)."""
    major, minor, mode, uid, gid = (dev.get("major", 0), dev.get("minor", 0), dev.get("fileMode", 0),
                                    dev.get("uid", 0), dev.get("gid", 0))
    if (type(major) is int and 0 <= major <= MAX_MAJOR and type(minor) is int and 0 <= minor <= MAX_MINOR
            and type(mode) is int and 0 <= mode <= 0o177777
            and mode & 0o170000 in (0, DEVICE_FILE_TYPES.get(str(dev.get("type")), 0))
            and type(uid) is int and 0 <= uid <= MAX_ID
            and type(gid) is int and 0 <= gid <= MAX_ID):
        return
    field = f"$.linux.devices[{i}]"
    _in_range(major, 0, MAX_MAJOR, f"{field}.major")
    _in_range(minor, 0, MAX_MINOR, f"{field}.minor")
    if type(mode) is int:
        # Permission bits, and optionally the file type bits of the node's
        # type (Podman writes 020666 for a character device).
        kind = DEVICE_FILE_TYPES.get(str(dev.get("type")), 0)
        if not 0 <= mode <= 0o177777 or mode & 0o170000 not in (0, kind):
            raise ConfigError(f"{field}.fileMode",
                              "must be permission bits (at most 07777), with at most the file type "
                              f"bits of the device's type ({kind:#o}), not {mode:#o}")
    _in_range(uid, 0, MAX_ID, f"{field}.uid")
    _in_range(gid, 0, MAX_ID, f"{field}.gid")


def check_numbers(cfg: dict[str, Any]) -> None:
    """Every number of config.json that reaches C or a syscall, in the range it can take there
    (and the lengths the kernel has a limit for)."""
    for key in ("hostname", "domainname"):
        name = cfg.get(key)
        if type(name) is str and len(name.encode()) > MAX_UTS_NAME:
            raise ConfigError(f"$.{key}", f"must be at most {MAX_UTS_NAME} bytes (the kernel's limit), "
                              f"not {len(name.encode())}")
    process = cfg.get("process")
    if type(process) is dict:
        check_process_numbers(process)
    linux = _dict(cfg.get("linux"))
    for i, dev in enumerate(_list(linux.get("devices"))):
        if type(dev) is dict:
            _check_device(dev, i)
    for key in ("uidMappings", "gidMappings"):
        _check_idmap(linux.get(key), f"$.linux.{key}")
    for i, mount in enumerate(_list(cfg.get("mounts"))):
        for key in ("uidMappings", "gidMappings"):
            _check_idmap(_dict(mount).get(key), f"$.mounts[{i}].{key}")
    for clock, offset in _dict(linux.get("timeOffsets")).items():
        _in_range(_dict(offset).get("nanosecs"), 0, 999999999,
                  json_path(["linux", "timeOffsets", clock, "nanosecs"]))
    seccomp = linux.get("seccomp")
    if type(seccomp) is dict:
        _check_seccomp(seccomp, "$.linux.seccomp")
    hooks = _dict(cfg.get("hooks"))
    for stage, entries in hooks.items():
        for i, hook in enumerate(_list(entries)):
            _in_range(_dict(hook).get("timeout"), 1, MAX_INT, json_path(["hooks", stage, i, "timeout"]),
                      f"1 to {MAX_INT} seconds")
