"""linux.seccomp -> a classic BPF program, compiled in the parent with
libseccomp (through the C helper) and loaded by the container's init as the
last step before execve."""

from __future__ import annotations

from pyoci.errors import ConfigError
from pyoci.linux import consts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ACT_KILL_PROCESS = consts.SECCOMP_RET_KILL_PROCESS
ACT_KILL_THREAD = consts.SECCOMP_RET_KILL_THREAD
ACT_TRAP = consts.SECCOMP_RET_TRAP
ACT_ERRNO = consts.SECCOMP_RET_ERRNO
ACT_TRACE = consts.SECCOMP_RET_TRACE
ACT_LOG = consts.SECCOMP_RET_LOG
ACT_ALLOW = consts.SECCOMP_RET_ALLOW
ACT_NOTIFY = consts.SECCOMP_RET_USER_NOTIF
EPERM = 1

COMPARE_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
               "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
FILTER_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32}


def action(name: str, errno_ret: int | None, field: str) -> int:
    if name == "SCMP_ACT_ALLOW":
        return ACT_ALLOW
    if name == "SCMP_ACT_ERRNO":
        return ACT_ERRNO | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return ACT_TRACE | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return ACT_TRAP
    if name == "SCMP_ACT_LOG":
        return ACT_LOG
    if name == "SCMP_ACT_NOTIFY":
        return ACT_NOTIFY
    raise ConfigError(field, f"unknown seccomp action {name!r}")


def arch_name(arch: str, field: str) -> str:
    if not arch.startswith("SCMP_ARCH_"):
        raise ConfigError(field, f"unknown architecture {arch!r}")
    return arch[len("SCMP_ARCH_"):].lower()


def uses_notify(sc: dict[str, Any]) -> bool:
    return sc.get("defaultAction") == "SCMP_ACT_NOTIFY" or any(
        e.get("action") == "SCMP_ACT_NOTIFY" for e in sc.get("syscalls") or [])


def listener_message(sc: dict[str, Any], state: dict[str, Any]) -> str:
    """The ContainerProcessState sent with the listener fd (runtime-spec
    config-linux.md); "pid":0 is filled in by the C helper."""
    from pyoci import SPEC_VERSION, jsonfast

    return jsonfast.dumps({"ociVersion": state.get("ociVersion", SPEC_VERSION), "fds": ["seccompFd"],
                           "pid": 0, "metadata": sc.get("listenerMetadata", ""), "state": state})


def compile_filter(sc: dict[str, Any]) -> tuple[bytes, int, int]:
    """(BPF program bytes, instruction count, seccomp(2) flags)."""
    from pyoci.errors import PyociError
    from pyoci.native._helper import ffi, lib

    keep: list[Any] = []

    def s(text: str) -> Any:
        buf = ffi.new("char[]", text.encode())
        keep.append(buf)
        return buf

    if uses_notify(sc) and not sc.get("listenerPath"):
        raise ConfigError("$.linux.seccomp.listenerPath", "is required when an action is SCMP_ACT_NOTIFY")
    prog = ffi.new("struct pyoci_seccomp *")
    prog.default_action = action(sc["defaultAction"], sc.get("defaultErrnoRet"),
                                 "$.linux.seccomp.defaultAction")
    archs = [arch_name(a, f"$.linux.seccomp.architectures[{i}]")
             for i, a in enumerate(sc.get("architectures") or [])]
    arch_arr = ffi.new("const char *[]", [s(a) for a in archs] or [ffi.NULL])
    prog.n_archs = len(archs)
    prog.archs = arch_arr
    rules: list[tuple[str, int, list[tuple[int, int, int, int]]]] = []
    for i, entry in enumerate(sc.get("syscalls") or []):
        field = f"$.linux.seccomp.syscalls[{i}]"
        act = action(entry["action"], entry.get("errnoRet"), field + ".action")
        args = []
        for j, a in enumerate(entry.get("args") or []):
            if a["op"] not in COMPARE_OPS:
                raise ConfigError(f"{field}.args[{j}].op", f"unknown comparison {a['op']!r}")
            args.append((int(a["index"]), COMPARE_OPS[a["op"]], int(a.get("value", 0)),
                         int(a.get("valueTwo", 0))))
        for name in entry.get("names") or []:
            rules.append((name, act, args))
    rule_arr = ffi.new("struct pyoci_seccomp_rule[]", max(1, len(rules)))
    for i, (name, act, args) in enumerate(rules):
        rule_arr[i].name = s(name)
        rule_arr[i].action = act
        arg_arr = ffi.new("struct pyoci_seccomp_arg[]", max(1, len(args)))
        keep.append(arg_arr)
        for j, (index, op, value, value2) in enumerate(args):
            arg_arr[j].index = index
            arg_arr[j].op = op
            arg_arr[j].value = value
            arg_arr[j].value_two = value2
        rule_arr[i].n_args = len(args)
        rule_arr[i].args = arg_arr
    prog.n_rules = len(rules)
    prog.rules = rule_arr
    flags = 0
    for i, f in enumerate(sc.get("flags") or []):
        if f not in FILTER_FLAGS:
            raise ConfigError(f"$.linux.seccomp.flags[{i}]", f"unknown seccomp flag {f!r}")
        flags |= FILTER_FLAGS[f]
    out = ffi.new("unsigned char[]", 8 * 65536)
    bad = ffi.new("int *")
    n = lib.pyoci_seccomp_compile(prog, out, 8 * 65536, bad)
    if n < 0:
        where = "$.linux.seccomp"
        if bad[0] >= 0:
            where = f"$.linux.seccomp (rule for {rules[bad[0]][0]})"
        elif bad[0] <= -2:
            where = f"$.linux.seccomp.architectures[{-2 - bad[0]}]"
        raise PyociError(f"compile the seccomp filter ({where})", op="seccomp", errno=-n)
    return bytes(ffi.buffer(out, 8 * n)), n, flags
