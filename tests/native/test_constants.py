"""Every kernel constant Python writes out is the system headers' value.

pyoci/linux/consts.py holds literal values so that modules which must not
load the C extension (the planner, the config checks, `state`) can use them;
csrc/helper.h exports the same names from the system headers through cffi as
lib.PYOCI_<NAME>.  These tests keep the two in step, both ways, and keep
copies of them out of the rest of pyoci/.
"""

from __future__ import annotations

import re
from pathlib import Path

from pyoci.native._helper import lib

from pyoci.linux import consts, seccomp
from pyoci.native import childerr, spawn
from pyoci.plan import build, mountopts

REPO = Path(__file__).resolve().parents[2]


def _names() -> list[str]:
    return [n for n in vars(consts) if n.isupper() and isinstance(getattr(consts, n), int)]


def _exported() -> list[str]:
    """The names of the header's kernel-constant block."""
    text = (REPO / "csrc" / "helper.h").read_text()
    return re.findall(r"^#define PYOCI_(\w+) \1$", text, re.M)


def test_every_constant_matches_the_system_headers() -> None:
    names = _names()
    assert len(names) > 30
    wrong = {n: (getattr(consts, n), getattr(lib, "PYOCI_" + n, None)) for n in names
             if getattr(consts, n) != getattr(lib, "PYOCI_" + n, None)}
    assert not wrong, f"pyoci/linux/consts.py differs from the system headers (Python, C): {wrong}"


def test_the_header_exports_exactly_those_constants() -> None:
    assert sorted(_exported()) == sorted(_names())


def test_modules_use_the_shared_values() -> None:
    assert build.NAMESPACE_FLAGS["user"] == lib.PYOCI_CLONE_NEWUSER
    assert {v for v in build.NAMESPACE_FLAGS.values()} <= {getattr(lib, "PYOCI_" + n) for n in _names()}
    assert mountopts.FLAG_OPTIONS["ro"] == (0, lib.PYOCI_MS_RDONLY)
    assert (seccomp.ACT_ALLOW, seccomp.ACT_NOTIFY) == (lib.PYOCI_SECCOMP_RET_ALLOW,
                                                       lib.PYOCI_SECCOMP_RET_USER_NOTIF)


# The namespace flags as they are spelled in hex: no module but consts.py may
# write one out (a personality or other table with the same number in another
# spelling is not one of them).
_CLONE_LITERAL = re.compile(r"\b0x(?:10000000|20000000|40000000|0[248]000000|00020000|00000080)\b")


def test_no_copies_of_namespace_flags() -> None:
    found = []
    for path in sorted((REPO / "pyoci").rglob("*.py")):
        if path.name == "consts.py":
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if _CLONE_LITERAL.search(line):
                found.append(f"{path.relative_to(REPO)}:{lineno}: {line.strip()}")
    assert not found, "use pyoci.linux.consts:\n" + "\n".join(found)


def test_message_and_op_numbers_come_from_the_header() -> None:
    """The Python side names the protocol's numbers only through lib."""
    assert spawn.OP_KINDS["mount"] == lib.PYOCI_OP_MOUNT
    assert set(childerr.STEP_NAMES) <= {getattr(lib, n) for n in dir(lib) if n.startswith("PYOCI_STEP_")}
    steps = {n for n in dir(lib) if n.startswith("PYOCI_STEP_")}
    named = {n for n in steps if getattr(lib, n) in childerr.STEP_NAMES}
    assert steps - named <= {"PYOCI_STEP_START_WAIT"}, f"steps without a name for errors: {steps - named}"


def test_every_op_kind_and_flag_has_a_python_name() -> None:
    kinds = {getattr(lib, n) for n in dir(lib) if n.startswith("PYOCI_OP_")}
    assert set(spawn.OP_KINDS.values()) == kinds
    assert len(spawn.OP_KINDS) == len(kinds)
    flags = {getattr(lib, n) for n in dir(lib) if n.startswith("PYOCI_F_")}
    assert set(spawn.OP_FLAGS.values()) == flags


def test_start_protocol_numbers_match_the_header() -> None:
    """`start` talks to the init without loading the helper: its copies of the
    protocol's numbers (pyoci/native/startmsg.py) are the header's."""
    from pyoci.native import startmsg

    assert (startmsg.MSG_ERROR, startmsg.MSG_START, startmsg.MSG_WARNING) == \
        (lib.PYOCI_MSG_ERROR, lib.PYOCI_MSG_START, lib.PYOCI_MSG_WARNING)
    assert startmsg.MSG_MAX == lib.PYOCI_MSG_MAX
    assert startmsg.MSG_SIZE == spawn.MSG_SIZE
