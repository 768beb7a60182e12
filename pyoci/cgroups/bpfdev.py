"""cgroup v2 device rules: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE,
assembled here and attached to the container's cgroup2 directory by the C
helper (csrc/bpf.c).

cgroup v2 has no devices.allow/deny files: the kernel asks every device
program attached to the cgroup (and its ancestors) about each open and
mknod, passing ``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major;
u32 minor}`` with ``access_type = access << 16 | type``; the program returns
1 to allow and 0 to refuse (EPERM).

Semantics of a rule list (``linux.resources.devices``, then the default
devices and the ``m`` access of each ``linux.devices`` node, as for v1):

* each access (``r``, ``w``, ``m``) of a request is decided on its own, by
  the **last** rule that matches the device and includes that access;
  the request is allowed only if every access it asks for is;
* with no matching rule an access is allowed (a new cgroup starts with
  every device allowed, as in v1), so configs start with a deny-all rule;
* type ``a`` (or no type) is every device and every access, whatever
  major, minor and access say, as in cgroup v1, where ``a`` resets the list;
* a missing major or minor (or -1) matches any number.

This agrees with cgroup v1 (and runc, which emulates v1) for the usual
lists: deny-all then allows, or allow-all then denies.  It differs where v1
cannot express a rule: v1 ignores a deny inside a wildcard allowed earlier
(``deny a; allow c *:* rwm; deny c 1:5 rwm`` leaves c 1:5 allowed in v1);
here the later deny wins.

The program, per group of accesses that share the same decision list::

    r2 = type, r3 = access, r4 = major, r5 = minor     (6 instructions)
    if !(r3 & ACCESSES) goto next_group                 (omitted for all three)
    for each rule, last first:
        if r2 != TYPE goto next_rule; if r4 != MAJOR ...; if r5 != MINOR ...
        goto next_group (allow) | goto deny
    goto deny (when no rule matching means deny)
    ...
    r0 = 1; exit
    deny: r0 = 0; exit

The kernel's verifier refuses unreachable instructions, so the assembler
drops them (and jumps to the next instruction).
"""

from __future__ import annotations

import os

from pyoci.errors import ConfigError, PyociError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# include/uapi/linux/bpf.h: BPF_DEVCG_ACC_*, BPF_DEVCG_DEV_*
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
ACC_ALL = 7
DEV_BLOCK, DEV_CHAR = 1, 2
ACCESS_BITS = {"r": ACC_READ, "w": ACC_WRITE, "m": ACC_MKNOD}
DEVICE_TYPES = {"a": 0, "b": DEV_BLOCK, "c": DEV_CHAR}

# struct bpf_insn opcodes (include/uapi/linux/bpf_common.h, bpf.h)
LDX_MEM_W = 0x61      # BPF_LDX | BPF_W | BPF_MEM:   dst = *(u32 *)(src + off)
ALU_MOV_X = 0xBC      # BPF_ALU | BPF_MOV | BPF_X:   w_dst = w_src
ALU_AND_K = 0x54      # BPF_ALU | BPF_AND | BPF_K:   w_dst &= imm
ALU_RSH_K = 0x74      # BPF_ALU | BPF_RSH | BPF_K:   w_dst >>= imm
ALU64_MOV_K = 0xB7    # BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
JMP_JA = 0x05         # BPF_JMP | BPF_JA:            goto +off
JMP_JNE_K = 0x55      # BPF_JMP | BPF_JNE | BPF_K:   if dst != imm goto +off
JMP_JSET_K = 0x45     # BPF_JMP | BPF_JSET | BPF_K:  if dst & imm goto +off
JMP_EXIT = 0x95       # BPF_JMP | BPF_EXIT:          return r0
JUMPS = (JMP_JA, JMP_JNE_K, JMP_JSET_K)

R0, R1, R2, R3, R4, R5 = 0, 1, 2, 3, 4, 5
MAX_NUMBER = 0x7FFFFFFF   # a jump's immediate is a signed 32-bit value

Insn = tuple[int, int, int, int, int]   # (code, dst, src, off, imm)


class Rule:
    """One device rule: ``dtype`` 0 (all), DEV_BLOCK or DEV_CHAR; ``major``
    and ``minor`` None for any; ``access`` a mask of ACC_*."""

    __slots__ = ("allow", "dtype", "major", "minor", "access")

    def __init__(self, allow: bool, dtype: int = 0, major: int | None = None,
                 minor: int | None = None, access: int = ACC_ALL) -> None:
        self.allow = allow
        self.dtype = dtype
        self.major = None if dtype == 0 else major
        self.minor = None if dtype == 0 else minor
        self.access = ACC_ALL if dtype == 0 else access

    def key(self) -> tuple[bool, int, int | None, int | None, int]:
        return (self.allow, self.dtype, self.major, self.minor, self.access)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        t = {0: "a", DEV_BLOCK: "b", DEV_CHAR: "c"}[self.dtype]
        acc = "".join(c for c, b in ACCESS_BITS.items() if self.access & b)
        num = "*" if self.major is None else str(self.major)
        num += ":" + ("*" if self.minor is None else str(self.minor))
        return f"<{'allow' if self.allow else 'deny'} {t} {num} {acc}>"


# -- rules from the config --------------------------------------------------------------------


def _number(value: Any, field: str) -> int | None:
    if value is None or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_NUMBER:
        raise ConfigError(field, f"must be -1 (any) or a device number from 0 to {MAX_NUMBER}, "
                          f"not {value!r}")
    return value


def _access(value: Any, field: str) -> int:
    if value is None:
        return ACC_ALL
    if not isinstance(value, str) or not value or any(c not in ACCESS_BITS for c in value):
        raise ConfigError(field, f"must be a non-empty combination of r, w and m, not {value!r}")
    mask = 0
    for c in value:
        mask |= ACCESS_BITS[c]
    return mask


def parse_rule(rule: dict[str, Any], field: str) -> Rule:
    """One entry of linux.resources.devices; errors name its JSON path."""
    t = rule.get("type")
    t = "a" if t is None else t
    if t not in DEVICE_TYPES:
        raise ConfigError(f"{field}.type", f"must be a (all), b (block) or c (char), not {t!r}")
    return Rule(bool(rule.get("allow")), DEVICE_TYPES[t], _number(rule.get("major"), f"{field}.major"),
                _number(rule.get("minor"), f"{field}.minor"), _access(rule.get("access"), f"{field}.access"))


def parse_line(line: str) -> Rule:
    """An allow rule in cgroup v1 syntax ("c 1:3 rwm", "c 136:* rwm")."""
    kind, numbers, access = line.split()
    major, minor = numbers.split(":")
    return Rule(True, DEVICE_TYPES[kind], None if major == "*" else int(major),
                None if minor == "*" else int(minor), _access(access, line))


def rules_for(devices: list[dict[str, Any]], nodes: list[dict[str, Any]] | None = None,
              field: str = "$.linux.resources.devices") -> list[Rule]:
    """The full list, as the v1 code writes it: the config's rules, then the
    default devices every container needs, then mknod of each linux.devices
    node (a FIFO is no device: the devices cgroup does not govern it)."""
    from pyoci.cgroups.common import DEFAULT_ALLOWED

    rules = [parse_rule(r, f"{field}[{i}]") for i, r in enumerate(devices)]
    rules += [parse_line(line) for line in DEFAULT_ALLOWED]
    for i, d in enumerate(nodes or []):
        kind = d.get("type", "c")
        if kind == "p":
            continue
        kind = "c" if kind == "u" else kind
        if kind not in ("b", "c"):
            raise ConfigError(f"$.linux.devices[{i}].type", f"must be c, u, b or p, not {kind!r}")
        rules.append(Rule(True, DEVICE_TYPES[kind], _number(d.get("major", 0), f"$.linux.devices[{i}].major"),
                          _number(d.get("minor", 0), f"$.linux.devices[{i}].minor"), ACC_MKNOD))
    return rules


# -- the decision each access gets ------------------------------------------------------------


def decisions(rules: list[Rule]) -> list[tuple[int, tuple[Rule, ...], bool]]:
    """Groups of accesses that are decided alike: (ACC_* mask, the rules to
    try in order, the answer when none matches).  Groups that always allow
    are left out."""
    per_bit: list[tuple[int, tuple[Rule, ...], bool]] = []
    for bit in (ACC_MKNOD, ACC_READ, ACC_WRITE):
        chain: list[Rule] = []
        default = True
        for r in reversed(rules):
            if not r.access & bit:
                continue
            if r.dtype == 0:              # every device: nothing before it counts
                default = r.allow
                break
            chain.append(r)
        # A rule tried last that gives the default answer changes nothing.
        while chain and chain[-1].allow == default:
            chain.pop()
        if chain or not default:
            per_bit.append((bit, tuple(chain), default))
    groups: list[tuple[int, tuple[Rule, ...], bool]] = []
    for bit, chain_t, default in per_bit:
        for i, (mask, c, d) in enumerate(groups):
            if c == chain_t and d == default:
                groups[i] = (mask | bit, c, d)
                break
        else:
            groups.append((bit, chain_t, default))
    return groups


def allows(rules: list[Rule], dtype: int, major: int, minor: int, access: int) -> bool:
    """What the program answers, computed directly from the rules (the
    reference the unit tests hold the program to)."""
    for bit in (ACC_MKNOD, ACC_READ, ACC_WRITE):
        if not access & bit:
            continue
        verdict = True
        for r in reversed(rules):
            if not r.access & bit:
                continue
            if r.dtype and (r.dtype != dtype or (r.major is not None and r.major != major)
                            or (r.minor is not None and r.minor != minor)):
                continue
            verdict = r.allow
            break
        if not verdict:
            return False
    return True


# -- assembling -----------------------------------------------------------------------------


_Op = tuple[int, int, int, int, "str | None", int]   # (code, dst, src, off, jump target, imm)


class _Asm:
    """Instructions whose jumps name labels; a label names the index of the
    instruction that follows it."""

    def __init__(self) -> None:
        self.code: list[_Op] = []
        self.labels: dict[str, int] = {}
        self._n = 0

    def new_label(self) -> str:
        self._n += 1
        return f"L{self._n}"

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def op(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
           target: str | None = None) -> None:
        self.code.append((code, dst, src, off, target, imm))

    def assemble(self) -> list[Insn]:
        code, labels = self.code, self.labels
        changed = True
        while changed:
            code, labels, changed = _drop_dead(code, labels)
        out: list[Insn] = []
        for i, (c, dst, src, off, target, imm) in enumerate(code):
            if target is not None:
                off = labels[target] - (i + 1)
                if not -0x8000 <= off <= 0x7FFF:
                    raise ConfigError("$.linux.resources.devices", f"too many rules: the device program "
                                      f"has {len(code)} instructions, more than a jump can span")
            out.append((c, dst, src, off, imm))
        return out


def _drop_dead(code: list[_Op], labels: dict[str, int]) -> tuple[list[_Op], dict[str, int], bool]:
    """Remove unreachable instructions (the verifier refuses them) and
    unconditional jumps to the instruction that follows anyway."""
    n = len(code)
    reach = [False] * n
    todo = [0]
    while todo:
        i = todo.pop()
        if i >= n or reach[i]:
            continue
        reach[i] = True
        c, _dst, _src, _off, target, _imm = code[i]
        if target is not None:
            todo.append(labels[target])
        if c not in (JMP_JA, JMP_EXIT):
            todo.append(i + 1)
    keep = []
    for i, (c, _dst, _src, _off, target, _imm) in enumerate(code):
        if not reach[i]:
            continue
        if c == JMP_JA and target is not None:
            to = labels[target]
            if to > i and not any(reach[i + 1:to]):
                continue                  # goto next
        keep.append(i)
    if len(keep) == n:
        return code, labels, False
    new_index = {old: new for new, old in enumerate(keep)}
    moved: dict[str, int] = {}
    for name, at in labels.items():
        moved[name] = next((new_index[j] for j in range(at, n) if j in new_index), len(keep))
    return [code[i] for i in keep], moved, True


def build(rules: list[Rule]) -> list[Insn]:
    """The device program for ``rules`` (see the module docstring)."""
    groups = decisions(rules)
    a = _Asm()
    if not groups:
        a.op(ALU64_MOV_K, R0, imm=1)
        a.op(JMP_EXIT)
        return a.assemble()
    a.op(LDX_MEM_W, R2, R1, off=0)        # r2 = access_type
    a.op(ALU_MOV_X, R3, R2)               # r3 = access_type
    a.op(ALU_AND_K, R2, imm=0xFFFF)       # r2 = device type
    a.op(ALU_RSH_K, R3, imm=16)           # r3 = access
    a.op(LDX_MEM_W, R4, R1, off=4)        # r4 = major
    a.op(LDX_MEM_W, R5, R1, off=8)        # r5 = minor
    deny = "deny"
    for mask, chain, default in groups:
        next_group = a.new_label()
        if mask != ACC_ALL:
            body = a.new_label()
            a.op(JMP_JSET_K, R3, imm=mask, target=body)
            a.op(JMP_JA, target=next_group)
            a.label(body)
        for r in chain:
            next_rule = a.new_label()
            a.op(JMP_JNE_K, R2, imm=r.dtype, target=next_rule)
            if r.major is not None:
                a.op(JMP_JNE_K, R4, imm=r.major, target=next_rule)
            if r.minor is not None:
                a.op(JMP_JNE_K, R5, imm=r.minor, target=next_rule)
            a.op(JMP_JA, target=next_group if r.allow else deny)
            a.label(next_rule)
        if not default:
            a.op(JMP_JA, target=deny)
        a.label(next_group)
    a.op(ALU64_MOV_K, R0, imm=1)
    a.op(JMP_EXIT)
    a.label(deny)
    a.op(ALU64_MOV_K, R0, imm=0)
    a.op(JMP_EXIT)
    return a.assemble()


def encode(insns: list[Insn]) -> bytes:
    """struct bpf_insn[] in this machine's byte order."""
    import sys

    little = sys.byteorder == "little"
    out = bytearray()
    for code, dst, src, off, imm in insns:
        # the register byte is two bit fields, dst_reg first
        regs = (dst | src << 4) if little else (dst << 4 | src)
        out.append(code)
        out.append(regs)
        if little:
            out += off.to_bytes(2, "little", signed=True) + imm.to_bytes(4, "little", signed=True)
        else:
            out += off.to_bytes(2, "big", signed=True) + imm.to_bytes(4, "big", signed=True)
    return bytes(out)


# -- loading and attaching ------------------------------------------------------------------

_EPERM, _ENOENT, _EBADF, _ENOSPC = 1, 2, 9, 28


def _fail(what: str, err: int, field: str | None, hint: str | None = None) -> PyociError:
    if err == _EPERM and hint is None:
        hint = "loading and attaching a cgroup device program needs CAP_SYS_ADMIN (or CAP_BPF) " \
               "in the initial user namespace"
    return PyociError(what, op=what.split(":")[0], field=field, errno=err, hint=hint)


def attached(cgroup_dir: str) -> list[int]:
    """Ids of the device programs attached to this cgroup directory itself."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _query(fd, cgroup_dir)
    finally:
        os.close(fd)


def _query(fd: int, cgroup_dir: str) -> list[int]:
    from pyoci.native._helper import ffi, lib

    size = 64
    while True:
        ids = ffi.new("unsigned int[]", size)
        n = lib.pyoci_bpf_prog_query_devices(fd, ids, size)
        if n == -_ENOSPC and size < 65536:
            size *= 4
            continue
        if n < 0:
            hint = f"{cgroup_dir} is not a cgroup v2 directory" if n == -_EBADF else None
            raise _fail(f"bpf(BPF_PROG_QUERY) on {cgroup_dir}", -n, None, hint)
        return [int(ids[i]) for i in range(n)]


def attach(cgroup_dir: str, insns: list[Insn], field: str | None = "$.linux.resources.devices") -> None:
    """Load the program and make it the only device program of the cgroup:
    attach it first, then detach the ones attached before, so that the
    cgroup is never without a filter (while both are attached both apply)."""
    from pyoci.native._helper import ffi, lib

    code = encode(insns)
    buf = ffi.new("unsigned char[]", code)
    log = ffi.new("char[]", 65536)
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = _query(fd, cgroup_dir)
        prog = lib.pyoci_bpf_prog_load_devices(buf, len(insns), log, len(log))
        if prog < 0:
            verifier = ffi.string(log).decode(errors="replace").strip()
            hint = None
            if verifier:
                hint = "the kernel's verifier said: " + " | ".join(verifier.splitlines()[-3:])
            raise _fail(f"bpf(BPF_PROG_LOAD) of the device filter for {cgroup_dir} "
                        f"({len(insns)} instructions)", -prog, field, hint)
        try:
            r = lib.pyoci_bpf_prog_attach_devices(fd, prog)
            if r < 0:
                raise _fail(f"bpf(BPF_PROG_ATTACH) of the device filter to {cgroup_dir}", -r, field)
        finally:
            os.close(prog)
        for prog_id in old:
            _detach(fd, cgroup_dir, prog_id, field)
    finally:
        os.close(fd)


def _detach(fd: int, cgroup_dir: str, prog_id: int, field: str | None) -> None:
    from pyoci.native._helper import lib

    pfd = lib.pyoci_bpf_prog_get_fd_by_id(prog_id)
    if pfd == -_ENOENT:
        return                          # gone already
    if pfd < 0:
        raise _fail(f"bpf(BPF_PROG_GET_FD_BY_ID) of device program {prog_id} on {cgroup_dir}", -pfd, field)
    try:
        r = lib.pyoci_bpf_prog_detach_devices(fd, pfd)
        if r < 0 and r != -_ENOENT:
            raise _fail(f"bpf(BPF_PROG_DETACH) of device program {prog_id} from {cgroup_dir}", -r, field)
    finally:
        os.close(pfd)


def detach_all(cgroup_dir: str) -> None:
    """Detach every device program attached to this directory."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for prog_id in _query(fd, cgroup_dir):
            _detach(fd, cgroup_dir, prog_id, None)
    finally:
        os.close(fd)


def apply(cgroup_dir: str, devices: list[dict[str, Any]], nodes: list[dict[str, Any]] | None = None) -> None:
    """linux.resources.devices (plus the defaults and nodes) on a cgroup2 directory."""
    attach(cgroup_dir, build(rules_for(devices, nodes)))
