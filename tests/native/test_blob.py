"""The spawn config's wire format, end to end: a plan encoded by Python
(pyoci.native.spawn.encode), flattened by C (pyoci_blob_write) and decoded
by C as pyoci-init does (pyoci_blob_map), compared field by field; and the
decoder's checks on a damaged blob (sizes, offsets, counts, terminators),
which must end in a clean error, never a wild pointer.

The comparison walks struct pyoci_spawn_config by cffi's own description of
it (csrc/helper.h), so a field added to the header is compared without
touching this file -- and a new pointer field fails here until blob.c and
POINTER_COUNTS below know how to carry it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from pyoci.native._helper import ffi, lib

from pyoci.native import spawn
from pyoci.plan.build import Host, build_plan
from pyoci.spec.load import parse_config

REPO = Path(__file__).resolve().parents[2]
FULL = REPO / "spec-fixtures" / "config" / "good" / "full.json"

# Pointer fields to arrays: field -> the field of the same struct counting
# its elements.  (seccomp_bpf counts 8-byte instructions.)  Strings (char *),
# NULL-terminated string arrays (char **) and single structs need no entry.
POINTER_COUNTS = {
    "join": "n_join",
    "ops": "n_ops",
    "groups": "n_groups",
    "rlimits": "n_rlimits",
    "start_hooks": "n_start_hooks",
    "seccomp_bpf": "seccomp_len",
    "nodes": "n_words",
}
SINGLE = {"sched", "mempolicy"}

HEADER = struct.Struct("=IIIIQ")     # struct blob_header: magic, abi, cfg_size, cfg_off, total


class Decoded:
    """The result of pyoci_blob_map on a blob: the config, and the span of
    the mapping, so that every pointer can be checked to lie inside it."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.cfg = _map(blob)
        _magic, _abi, _size, cfg_off, total = HEADER.unpack_from(blob)
        self.base = int(ffi.cast("uintptr_t", self.cfg)) - cfg_off
        self.total = total

    def inside(self, ptr: Any, size: int) -> bool:
        addr = int(ffi.cast("uintptr_t", ptr))
        return self.base <= addr and addr + size <= self.base + self.total


def _memfd(data: bytes, size: int | None = None) -> int:
    fd = os.memfd_create("pyoci-test-blob", os.MFD_CLOEXEC)
    os.write(fd, data)
    if size is not None:
        os.ftruncate(fd, size)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _map(blob: bytes) -> Any:
    cfg = lib.pyoci_blob_map(_memfd(blob))
    if cfg == ffi.NULL:
        raise OSError(ffi.errno, os.strerror(ffi.errno))
    return cfg


def _refused(blob: bytes, size: int | None = None) -> int:
    """pyoci_blob_map on a damaged blob: it must return NULL; its errno."""
    ffi.errno = 0
    cfg = lib.pyoci_blob_map(_memfd(blob, size))
    if cfg != ffi.NULL:
        lib.pyoci_blob_unmap()
        pytest.fail("pyoci_blob_map accepted a damaged blob")
    return int(ffi.errno)


def _write(cfg: Any) -> bytes:
    fd = lib.pyoci_blob_write(cfg, 0)
    assert fd >= 0, os.strerror(-fd)
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _dump(value: Any, ctype: Any, parent: Any = None, name: str = "", dec: Decoded | None = None) -> Any:
    """A Python value for a C value of ``ctype``; with ``dec``, every pointer
    followed must lie inside the decoded blob (a field blob.c forgot would
    still point into the encoder's memory)."""
    if ctype.kind in ("primitive", "enum"):
        return int(value) if ctype.cname != "char" else value
    if ctype.kind == "struct":
        return {f: _dump(getattr(value, f), ft.type, value, f, dec) for f, ft in ctype.fields}
    if ctype.kind == "array":
        return [_dump(value[i], ctype.item, None, name, dec) for i in range(ctype.length)]
    assert ctype.kind == "pointer", (name, ctype.cname)
    if name in POINTER_COUNTS and int(getattr(parent, POINTER_COUNTS[name])) == 0:
        return []           # an empty array: the encoder may pass one, the blob carries NULL
    if value == ffi.NULL:
        return None
    item = ctype.item
    if item.cname in ("char", "const char"):
        text = ffi.string(value)
        if dec is not None:
            assert dec.inside(value, len(text) + 1), f"{name}: a string outside the blob"
        return text
    if item.kind == "pointer" and item.item.cname in ("char", "const char"):
        out = []
        i = 0
        while True:
            if dec is not None:
                assert dec.inside(value + i, ffi.sizeof(item)), f"{name}: an array outside the blob"
            if value[i] == ffi.NULL:
                return out
            out.append(_dump(value[i], item, None, f"{name}[{i}]", dec))
            i += 1
    if name in POINTER_COUNTS:
        count = int(getattr(parent, POINTER_COUNTS[name]))
        size = 8 if name == "seccomp_bpf" else ffi.sizeof(item)
        if dec is not None:
            assert dec.inside(value, count * size), f"{name}: an array outside the blob"
        if name == "seccomp_bpf":
            return bytes(ffi.buffer(value, count * 8))
        return [_dump(value[i], item, None, f"{name}[{i}]", dec) for i in range(count)]
    if name in SINGLE:
        if dec is not None:
            assert dec.inside(value, ffi.sizeof(item)), f"{name}: a struct outside the blob"
        return _dump(value[0], item, None, name, dec)
    pytest.fail(f"pointer field {name!r} ({ctype.cname}) is new: carry it in csrc/blob.c "
                "(pyoci_blob_write and pyoci_blob_map) and add it to POINTER_COUNTS or SINGLE here")


CFG_TYPE = ffi.typeof("struct pyoci_spawn_config")


def _full_plan(tmp_path: Path) -> tuple[Any, spawn._Encoded, socket.socket]:
    """The encoded config of spec-fixtures' full.json (every section used),
    with its seccomp agent socket made real."""
    doc = json.loads(FULL.read_text())
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.bind(str(tmp_path / "agent.sock"))
    agent.listen(1)
    doc["linux"]["seccomp"]["listenerPath"] = str(tmp_path / "agent.sock")
    cfg = parse_config(json.dumps(doc).encode())
    plan = build_plan(cfg, "/bundle", "/bundle/rootfs", Host(euid=0, egid=0, init_userns=True))
    hooks = list(cfg.get("hooks", {}).get("startContainer") or [])
    assert hooks, "full.json has startContainer hooks"
    placement = spawn.SelfPlacement({"": "/sys/fs/cgroup/unified/x", "memory": "/sys/fs/cgroup/memory/x"},
                                    required=True)
    enc = spawn.encode(plan, sync_fd=5, start_fd=6, start_hooks=hooks, hook_state='{"pid":0}',
                       keyring="ctr", console_fd=7, placement=placement)
    return plan, enc, agent


def _close(enc: spawn._Encoded, agent: socket.socket) -> None:
    for fd in enc.fds:
        os.close(fd)
    agent.close()


def test_round_trip_of_a_full_plan(tmp_path: Path) -> None:
    plan, enc, agent = _full_plan(tmp_path)
    try:
        want = _dump(enc.cfg[0], CFG_TYPE)
        dec = Decoded(_write(enc.cfg))
        try:
            got = _dump(dec.cfg[0], CFG_TYPE, dec=dec)
        finally:
            lib.pyoci_blob_unmap()
    finally:
        _close(enc, agent)
    # Field by field, for a readable failure.
    for field, _ in CFG_TYPE.fields:
        assert got[field] == want[field], field
    # And against the plan itself: Python's encoder said what the plan says.
    p = plan.process
    assert got["abi_version"] == lib.PYOCI_ABI_VERSION
    assert got["unshare_flags"] == plan.unshare_flags
    assert [(j["type"], j["path"].decode()) for j in got["join"]] == plan.join
    assert got["rootfs"] == plan.rootfs.encode()
    assert got["hostname"] == plan.hostname.encode() and got["domainname"] == plan.domainname.encode()
    assert len(got["ops"]) == len(plan.ops) > 5
    for op, wire in zip(plan.ops, got["ops"], strict=True):
        assert wire["kind"] == spawn.OP_KINDS[op.kind]
        assert wire["target"] == (op.target.encode() if op.target is not None else None)
        assert wire["source"] == (op.source.encode() if op.source is not None else None)
        assert (wire["mflags"], wire["mode"], wire["uid"]) == (op.mflags, op.mode, op.uid)
    assert [a.decode() for a in got["argv"]] == p.args
    assert [e.decode() for e in got["envp"]] == p.env
    assert got["cwd"] == p.cwd.encode()
    assert (got["uid"], got["gid"], got["groups"]) == (p.uid, p.gid, p.groups)
    assert [(r["resource"], r["soft"], r["hard"]) for r in got["rlimits"]] == p.rlimits
    assert got["cap_bounding"] == p.caps["bounding"] and got["cap_ambient"] == p.caps["ambient"]
    assert len(got["seccomp_bpf"]) == got["seccomp_len"] * 8 > 0
    assert b'"fds":["seccompFd"]' in got["seccomp_listener_msg"]
    assert got["start_hooks"] and got["start_hooks"][0]["path"]
    assert got["sched"] is not None and got["mempolicy"] is not None and got["mempolicy"]["nodes"]
    assert got["personality"] == p.personality
    assert got["cgroup2_dir"] == b"/sys/fs/cgroup/unified/x"
    assert got["cgroup_tasks"] == [b"/sys/fs/cgroup/memory/x/tasks"]
    assert got["keyring_name"] == b"ctr" and got["timens_offsets"] == plan.timens_offsets.encode()


def test_round_trip_of_an_empty_config() -> None:
    """No lists, no strings: NULL stays NULL, zero counts stay zero."""
    cfg = ffi.new("struct pyoci_spawn_config *")
    cfg.abi_version = lib.PYOCI_ABI_VERSION
    dec = Decoded(_write(cfg))
    try:
        got = _dump(dec.cfg[0], CFG_TYPE, dec=dec)
    finally:
        lib.pyoci_blob_unmap()
    assert got == _dump(cfg[0], CFG_TYPE)


# -- the decoder's checks ---------------------------------------------------------------


@pytest.fixture
def blob() -> tuple[bytes, int]:
    """A small valid blob (argv, a string, one op) and its config's offset."""
    cfg = ffi.new("struct pyoci_spawn_config *")
    keep = [ffi.new("char[]", b"/rootfs"), ffi.new("char[]", b"sh"), ffi.new("char[]", b"/proc")]
    argv = ffi.new("const char *[]", [keep[1], ffi.NULL])
    ops = ffi.new("struct pyoci_op[]", 1)
    ops[0].kind = lib.PYOCI_OP_MKDIR
    ops[0].target = keep[2]
    cfg.abi_version = lib.PYOCI_ABI_VERSION
    cfg.rootfs = keep[0]
    cfg.argv = argv
    cfg.ops = ops
    cfg.n_ops = 1
    data = _write(cfg)
    Decoded(data)           # valid as it is
    lib.pyoci_blob_unmap()
    return data, HEADER.unpack_from(data)[3]


def _with_total(data: bytes | bytearray) -> bytes:
    """``data`` with the header's total size made to match its length."""
    out = bytearray(data)
    struct.pack_into("=Q", out, 16, len(out))
    return bytes(out)


def _set(data: bytes, cfg_off: int, field: str, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("=" + fmt, out, cfg_off + ffi.offsetof("struct pyoci_spawn_config", field), value)
    return bytes(out)


def test_empty_and_short_blobs_are_refused() -> None:
    assert _refused(b"") == errno.EINVAL
    assert _refused(b"\0" * (HEADER.size - 1)) == errno.EINVAL


def test_truncated_blob_is_refused(blob: tuple[bytes, int]) -> None:
    data, _ = blob
    assert _refused(data[:-1]) == errno.EINVAL                  # total says more
    for cut in (HEADER.size, len(data) // 2, len(data) - 8):
        assert _refused(_with_total(data[:cut])) == errno.EINVAL  # offsets past the end


def test_bad_header_is_refused(blob: tuple[bytes, int]) -> None:
    data, _ = blob
    for offset in (0, 4, 8):                                    # magic, ABI version, config size
        damaged = bytearray(data)
        damaged[offset] ^= 0x55
        assert _refused(bytes(damaged)) == errno.EINVAL
    damaged = bytearray(data)
    struct.pack_into("=I", damaged, 12, len(data) - 8)          # the config past the end
    assert _refused(bytes(damaged)) == errno.EINVAL


def test_string_without_terminator_is_refused(blob: tuple[bytes, int]) -> None:
    data, cfg_off = blob
    tail = len(data)
    damaged = _with_total(data + b"abc")                        # no NUL up to the end
    assert _refused(_set(damaged, cfg_off, "rootfs", "Q", tail + 1)) == errno.EINVAL
    # the same with a NUL is fine
    fixed = _with_total(data + b"abc\0")
    dec = Decoded(_set(fixed, cfg_off, "rootfs", "Q", tail + 1))
    try:
        assert ffi.string(dec.cfg.rootfs) == b"abc"
    finally:
        lib.pyoci_blob_unmap()


def test_string_array_without_terminator_is_refused(blob: tuple[bytes, int]) -> None:
    data, cfg_off = blob
    # argv pointing at its own last element: the array runs off the end.
    padded = data + b"\0" * (-len(data) % 8)
    tail = len(padded)
    string_at = data.index(b"sh\0") + 1
    damaged = _with_total(padded + struct.pack("=Q", string_at))
    assert _refused(_set(damaged, cfg_off, "argv", "Q", tail + 1)) == errno.EINVAL


def test_offsets_outside_or_misaligned_are_refused(blob: tuple[bytes, int]) -> None:
    data, cfg_off = blob
    for value in (len(data) + 1, len(data) + 4096, 2**63):
        assert _refused(_set(data, cfg_off, "hostname", "Q", value)) == errno.EINVAL
    ops_off = struct.unpack_from("=Q", data, cfg_off + ffi.offsetof("struct pyoci_spawn_config", "ops"))[0]
    assert _refused(_set(data, cfg_off, "ops", "Q", ops_off + 1)) == errno.EINVAL


def test_counts_past_the_end_are_refused(blob: tuple[bytes, int]) -> None:
    data, cfg_off = blob
    for count in (2, 1000, 2**31 - 1, -1, -(2**31)):
        assert _refused(_set(data, cfg_off, "n_ops", "i", count)) == errno.EINVAL
    # a count with no array at all
    assert _refused(_set(data, cfg_off, "n_join", "i", 1)) == errno.EINVAL
    assert _refused(_set(data, cfg_off, "n_groups", "i", 3)) == errno.EINVAL
    assert _refused(_set(data, cfg_off, "n_start_hooks", "i", 1)) == errno.EINVAL


def test_oversize_blob_is_refused(blob: tuple[bytes, int]) -> None:
    data, _ = blob
    # sparse: the memfd takes no memory for the hole
    assert _refused(data, size=lib.PYOCI_BLOB_MAX + 1) == errno.E2BIG


def test_writer_refuses_negative_counts() -> None:
    cfg = ffi.new("struct pyoci_spawn_config *")
    cfg.abi_version = lib.PYOCI_ABI_VERSION
    for field in ("n_join", "n_ops", "n_groups", "n_rlimits", "n_start_hooks"):
        setattr(cfg, field, -1)
        assert lib.pyoci_blob_write(cfg, 0) == -errno.EINVAL, field
        setattr(cfg, field, 0)


def test_a_pyoci_init_given_a_damaged_blob_exits_cleanly(blob: tuple[bytes, int], tmp_path: Path) -> None:
    """The real consumer: pyoci-init (build/pyoci-init) refuses a damaged
    config with one line and exit status 127, never a signal."""
    init = REPO / "build" / "pyoci-init"
    if not init.exists():
        pytest.skip("build/pyoci-init is not built in this checkout")
    import subprocess

    data, cfg_off = blob
    exe = tmp_path / "pyoci-init"
    shutil.copy(init, exe)
    for damaged in (data[:-1], _set(data, cfg_off, "n_ops", "i", 1000),
                    _set(data, cfg_off, "hostname", "Q", len(data) + 1)):
        fd = _memfd(damaged)
        try:
            proc = subprocess.run(["pyoci-init", str(fd)], executable=str(exe), pass_fds=(fd,),
                                  capture_output=True, text=True, timeout=10, check=False)
        finally:
            os.close(fd)
        assert proc.returncode == 127, proc
        assert proc.stderr == "pyoci-init: not started by pyoci (no config)\n"
