"""Semantic checks on config.json that the JSON Schema cannot express.

Each check is a small named function that takes the whole (schema-valid)
config and raises :class:`ConfigError` with the JSON path of the offending
value.  ``CHECKS`` lists them in the order they run; :func:`check_config` runs
them all.  To add a rule, write a function and append it to ``CHECKS``.

The checks assume the document already passed ``_validator.validate`` (types
are right), and follow the runtime-spec's MUST rules plus the few places where
runc refuses a config the spec leaves open (hostname without a UTS namespace).

Outside ``CHECKS``, for create, exec and validate: :func:`check_lsm` (LSM
labels this host cannot apply, read from /sys) and :func:`has_limits` (does
linux.resources ask for any limit).
"""

from __future__ import annotations

import os

from pyoci.errors import ConfigError
from pyoci.linux.names import (
    MPOL_FLAGS,
    PERSONALITY_FLAGS,
    RLIMITS,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Config = dict[str, Any]

NAMESPACE_TYPES = frozenset({"mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"})
DEVICE_TYPES = frozenset({"c", "b", "u", "p"})
TIME_OFFSET_CLOCKS = frozenset({"boottime", "monotonic"})
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
# Seccomp actions that take an errno (runtime-spec: "When the action doesn't
# support an errno, the runtime MUST print an error and fail").
ERRNO_ACTIONS = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})


def _show(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key(key: str) -> str:
    if key.isidentifier():
        return "." + key
    return "['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _linux(cfg: Config) -> dict[str, Any]:
    linux = cfg.get("linux")
    return linux if isinstance(linux, dict) else {}


def _namespaces(cfg: Config) -> list[dict[str, Any]]:
    namespaces = _linux(cfg).get("namespaces")
    return namespaces if isinstance(namespaces, list) else []


def _namespace(cfg: Config, ns_type: str) -> dict[str, Any] | None:
    """The namespaces entry of that type, or None if the container inherits it."""
    for ns in _namespaces(cfg):
        if ns.get("type") == ns_type:
            return ns
    return None


def _creates_namespace(cfg: Config, ns_type: str) -> bool:
    """True if the container gets a new namespace of that type (listed without a path)."""
    ns = _namespace(cfg, ns_type)
    return ns is not None and not ns.get("path")


def _require_absolute(path: str, field: str, what: str) -> None:
    if not path.startswith("/"):
        raise ConfigError(field, f"{what} must be an absolute path, not {_show(path)}")


# -- root and process -------------------------------------------------------


def check_root_present(cfg: Config) -> None:
    """root is REQUIRED on every platform but Windows."""
    if "root" not in cfg:
        raise ConfigError("$.root", "is required on Linux")


def check_root_path(cfg: Config) -> None:
    """An empty root.path would make the bundle directory itself the rootfs
    (runc runs it so); it cannot be what the user meant."""
    root = cfg.get("root")
    if isinstance(root, dict) and root.get("path") == "":
        raise ConfigError("$.root.path", "must not be empty",
                          hint='name the root filesystem directory, usually "rootfs"')


def check_process_cwd(cfg: Config) -> None:
    process = cfg.get("process")
    if process is not None:
        _check_cwd(process, "$.process")


def check_process_rlimits(cfg: Config) -> None:
    process = cfg.get("process")
    if process is not None:
        _check_rlimits(process, "$.process")


def _check_cwd(process: dict[str, Any], base: str) -> None:
    cwd = process.get("cwd")
    if isinstance(cwd, str):
        _require_absolute(cwd, f"{base}.cwd", "the working directory")


def _check_rlimits(process: dict[str, Any], base: str) -> None:
    seen: dict[str, int] = {}
    for i, rlimit in enumerate(process.get("rlimits") or ()):
        kind = rlimit.get("type")
        if kind not in RLIMITS:
            raise ConfigError(f"{base}.rlimits[{i}].type", f"unknown rlimit {_show(str(kind))}")
        if kind in seen:
            raise ConfigError(
                f"{base}.rlimits[{i}].type", f"duplicate rlimit {kind} (also at rlimits[{seen[kind]}])"
            )
        seen[kind] = i
        soft, hard = rlimit.get("soft"), rlimit.get("hard")
        if isinstance(soft, int) and isinstance(hard, int) and soft > hard:
            raise ConfigError(
                f"{base}.rlimits[{i}].soft", f"soft limit {soft} is above the hard limit {hard} for {kind}"
            )


def check_process_io_priority(cfg: Config) -> None:
    process = cfg.get("process")
    if process is not None:
        _check_io_priority(process, "$.process")


def check_process_scheduler(cfg: Config) -> None:
    process = cfg.get("process")
    if process is not None:
        _check_scheduler(process, "$.process")


def _check_io_priority(process: dict[str, Any], base: str) -> None:
    io = process.get("ioPriority")
    if not isinstance(io, dict):
        return
    level = io.get("priority")
    if isinstance(level, int) and not 0 <= level <= 7:
        raise ConfigError(f"{base}.ioPriority.priority",
                          f"must be 0 (highest) to 7 (lowest), not {level}")


# Policies whose nice value counts, and the real-time ones (which take a priority).
NICE_POLICIES = frozenset({"SCHED_OTHER", "SCHED_BATCH"})
RT_POLICIES = frozenset({"SCHED_FIFO", "SCHED_RR"})


def _check_scheduler(process: dict[str, Any], base: str) -> None:
    """runtime-spec "Scheduler": what sched_setattr(2) would refuse, named by field."""
    sched = process.get("scheduler")
    if not isinstance(sched, dict):
        return
    where = f"{base}.scheduler"
    policy = sched.get("policy")
    if policy == "SCHED_ISO":
        raise ConfigError(f"{where}.policy", "SCHED_ISO is reserved by Linux and not implemented")
    nice = sched.get("nice", 0)
    if isinstance(nice, int):
        if not -20 <= nice <= 19:
            raise ConfigError(f"{where}.nice", f"must be -20 to 19, not {nice}")
        if nice and policy not in NICE_POLICIES:
            raise ConfigError(f"{where}.nice",
                              f"only SCHED_OTHER and SCHED_BATCH have a nice value, not {policy}")
    priority = sched.get("priority", 0)
    if isinstance(priority, int):
        if policy in RT_POLICIES and not 1 <= priority <= 99:
            raise ConfigError(f"{where}.priority", f"{policy} needs a priority from 1 to 99, not {priority}")
        if policy not in RT_POLICIES and priority:
            raise ConfigError(f"{where}.priority",
                              f"only SCHED_FIFO and SCHED_RR take a priority, not {policy}")
    times = {k: sched.get(k, 0) for k in ("runtime", "deadline", "period")}
    if policy == "SCHED_DEADLINE":
        for key in ("runtime", "deadline"):
            if not times[key]:
                raise ConfigError(f"{where}.{key}", "SCHED_DEADLINE needs a runtime and a deadline (ns)")
        period = times["period"] or times["deadline"]
        if not times["runtime"] <= times["deadline"] <= period:
            raise ConfigError(where, "SCHED_DEADLINE needs runtime <= deadline <= period, not "
                              f"{times['runtime']}, {times['deadline']}, {period}")
    else:
        for key, value in times.items():
            if value:
                raise ConfigError(f"{where}.{key}", f"only SCHED_DEADLINE has a {key}, not {policy}")


def check_process_user(cfg: Config) -> None:
    process = cfg.get("process")
    if process is not None:
        _check_user(process, "$.process")


def check_process_env(cfg: Config) -> None:
    process = cfg.get("process")
    if process is not None:
        _check_env(process, "$.process")


# The ids a process may take: setresuid(2) and friends read (uid_t)-1 as
# "leave unchanged" (uid 4294967295 would run the program as the caller,
# root), and runc refuses everything above the signed 32-bit range too.
MAX_ID = 2147483647
ID_RANGE = f"0..{MAX_ID}"


def id_problem(value: object) -> str | None:
    """Why ``value`` is not a uid or gid a process may take, or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, not {value!r}"
    if not 0 <= value <= MAX_ID:
        return f"uids and gids must be in the range {ID_RANGE}, not {value}"
    return None


def _check_id(value: object, field: str) -> None:
    problem = id_problem(value)
    if problem:
        raise ConfigError(field, problem)


def _check_user(process: dict[str, Any], base: str) -> None:
    user = process.get("user")
    if not isinstance(user, dict):
        return
    for key in ("uid", "gid"):
        if key in user:
            _check_id(user[key], f"{base}.user.{key}")
    for i, gid in enumerate(user.get("additionalGids") or ()):
        _check_id(gid, f"{base}.user.additionalGids[{i}]")


def env_problem(entry: str) -> str | None:
    """Why a process.env entry is not NAME=VALUE with a non-empty NAME, or None."""
    name, sep, _ = entry.partition("=")
    if not sep:
        return f"{_show(entry)} is not NAME=VALUE (no \"=\")"
    if not name:
        return f"{_show(entry)} has an empty variable name"
    return None


def _check_env(process: dict[str, Any], base: str) -> None:
    for i, entry in enumerate(process.get("env") or ()):
        if isinstance(entry, str):
            problem = env_problem(entry)
            if problem:
                raise ConfigError(f"{base}.env[{i}]", problem)


def check_process(process: dict[str, Any], base: str = "$.process") -> None:
    """The process checks on their own, for an `exec --process` document (base "$")."""
    _check_cwd(process, base)
    _check_user(process, base)
    _check_env(process, base)
    _check_rlimits(process, base)
    _check_io_priority(process, base)
    _check_scheduler(process, base)


# -- mounts and paths -------------------------------------------------------


def check_mount_destinations(cfg: Config) -> None:
    """Destinations must not be empty.

    Relative destinations are accepted: runtime-spec 1.2 made them legal on
    Linux ("interpreted as relative to /", deprecated) for the sake of old
    configurations, and runc accepts them with a warning whatever ociVersion
    says.
    """
    for i, mount in enumerate(cfg.get("mounts") or ()):
        if mount.get("destination") == "":
            raise ConfigError(f"$.mounts[{i}].destination", "must not be empty")


def check_mount_idmap(cfg: Config) -> None:
    """An idmap/ridmap mount needs its own mappings or a new user namespace to take them from."""
    userns = _namespace(cfg, "user") is not None
    for i, mount in enumerate(cfg.get("mounts") or ()):
        options = mount.get("options") or ()
        if ("idmap" in options or "ridmap" in options) and not mount.get("uidMappings") and not userns:
            raise ConfigError(
                f"$.mounts[{i}].options",
                "idmap needs uidMappings and gidMappings on the mount or a user namespace",
            )


def check_masked_paths(cfg: Config) -> None:
    for i, path in enumerate(_linux(cfg).get("maskedPaths") or ()):
        _require_absolute(path, f"$.linux.maskedPaths[{i}]", "a masked path")


def check_readonly_paths(cfg: Config) -> None:
    for i, path in enumerate(_linux(cfg).get("readonlyPaths") or ()):
        _require_absolute(path, f"$.linux.readonlyPaths[{i}]", "a read-only path")


def check_hook_paths(cfg: Config) -> None:
    hooks = cfg.get("hooks")
    if not isinstance(hooks, dict):
        return
    for kind in HOOK_KINDS:
        for i, hook in enumerate(hooks.get(kind) or ()):
            _require_absolute(hook.get("path", ""), f"$.hooks.{kind}[{i}].path", "a hook path")


# -- namespaces -------------------------------------------------------------


def check_namespace_types(cfg: Config) -> None:
    seen: dict[str, int] = {}
    for i, ns in enumerate(_namespaces(cfg)):
        kind = ns.get("type")
        if kind not in NAMESPACE_TYPES:
            raise ConfigError(f"$.linux.namespaces[{i}].type", f"unknown namespace type {_show(str(kind))}")
        if kind in seen:
            raise ConfigError(
                f"$.linux.namespaces[{i}].type",
                f"duplicate namespace type {kind} (also at namespaces[{seen[kind]}])",
            )
        seen[kind] = i


def check_namespace_paths(cfg: Config) -> None:
    for i, ns in enumerate(_namespaces(cfg)):
        path = ns.get("path")
        if path:  # "" means no path, as in Go
            _require_absolute(path, f"$.linux.namespaces[{i}].path", "a namespace path")


def check_user_namespace_mappings(cfg: Config) -> None:
    """A new user namespace needs uid and gid mappings; mappings need a user namespace.

    A user namespace joined by path needs none (its mappings already exist).
    """
    linux = _linux(cfg)
    userns = _namespace(cfg, "user")
    if userns is None:
        for key in ("uidMappings", "gidMappings"):
            if linux.get(key):
                raise ConfigError(
                    f"$.linux.{key}",
                    "is set but there is no user namespace",
                    hint='add {"type": "user"} to linux.namespaces',
                )
    elif not userns.get("path"):
        for key in ("uidMappings", "gidMappings"):
            if not linux.get(key):
                raise ConfigError(
                    f"$.linux.{key}", "is required (and must not be empty) for a new user namespace"
                )


def check_hostname_uts(cfg: Config) -> None:
    if cfg.get("hostname") and _namespace(cfg, "uts") is None:
        raise ConfigError(
            "$.hostname",
            "unable to set hostname without a private UTS namespace",
            hint='add {"type": "uts"} to linux.namespaces',
        )


def check_domainname_uts(cfg: Config) -> None:
    if cfg.get("domainname") and _namespace(cfg, "uts") is None:
        raise ConfigError(
            "$.domainname",
            "unable to set domainname without a private UTS namespace",
            hint='add {"type": "uts"} to linux.namespaces',
        )


def check_time_offsets(cfg: Config) -> None:
    offsets = _linux(cfg).get("timeOffsets")
    if not offsets:
        return
    for clock in offsets:
        if clock not in TIME_OFFSET_CLOCKS:
            raise ConfigError(
                f"$.linux.timeOffsets{_key(clock)}",
                "unknown clock: only boottime and monotonic can be offset",
            )
    if not _creates_namespace(cfg, "time"):
        raise ConfigError(
            "$.linux.timeOffsets",
            "needs a new time namespace (offsets can't be set on one that is inherited or joined)",
            hint='add {"type": "time"} without a path to linux.namespaces',
        )


# -- other linux ------------------------------------------------------------


def check_devices(cfg: Config) -> None:
    for i, dev in enumerate(_linux(cfg).get("devices") or ()):
        kind = dev.get("type")
        if kind not in DEVICE_TYPES:
            raise ConfigError(
                f"$.linux.devices[{i}].type", f"must be one of c, b, u, p, not {_show(str(kind))}"
            )
        _require_absolute(dev.get("path", ""), f"$.linux.devices[{i}].path", "a device path")
        for key in ("uid", "gid"):
            if key in dev:
                _check_id(dev[key], f"$.linux.devices[{i}].{key}")


# The highest id a user namespace can map: (u32)-1 is never a valid id.
MAX_MAPPED_ID = 4294967294


def _check_mappings(entries: object, field: str) -> None:
    if not isinstance(entries, list):
        return
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        size = entry.get("size")
        if isinstance(size, int) and size < 1:
            raise ConfigError(f"{field}[{i}].size", f"must be at least 1, not {size}")
        for key in ("containerID", "hostID"):
            first = entry.get(key)
            if isinstance(first, int) and isinstance(size, int) and first + size - 1 > MAX_MAPPED_ID:
                raise ConfigError(f"{field}[{i}].{key}",
                                  f"{first} + size {size} runs past {MAX_MAPPED_ID}, the highest id "
                                  "a user namespace can map")


def check_id_mappings(cfg: Config) -> None:
    """The container's id maps and idmapped mounts' maps: what the kernel
    would refuse in uid_map/gid_map, named by field."""
    linux = _linux(cfg)
    for key in ("uidMappings", "gidMappings"):
        _check_mappings(linux.get(key), f"$.linux.{key}")
    for i, mount in enumerate(cfg.get("mounts") or ()):
        if isinstance(mount, dict):
            for key in ("uidMappings", "gidMappings"):
                _check_mappings(mount.get(key), f"$.mounts[{i}].{key}")


def check_cgroups_path(cfg: Config) -> None:
    """linux.cgroupsPath must name a cgroup of the container's own: never the
    root cgroup ("/", "//", "/."), the runtime's own cgroup (".") or a path
    climbing up with ".." (relative paths start at the runtime's cgroup):
    pyoci places the init there and at delete kills what it holds and
    removes it."""
    path = _linux(cfg).get("cgroupsPath")
    if not isinstance(path, str) or not path:
        return
    field = "$.linux.cgroupsPath"
    if ":" in path and not path.startswith("/"):
        parts = [p for part in path.split(":") for p in part.split("/")]
    else:
        parts = path.split("/")
    if ".." in parts:
        raise ConfigError(field, f"{_show(path)} must not contain \"..\" (a cgroup path may not "
                          "climb out of the cgroup it starts from)")
    if not [p for p in parts if p not in ("", ".")]:
        what = "the root cgroup" if path.startswith("/") else "the runtime's own cgroup"
        raise ConfigError(field, f"{_show(path)} is {what}: the container would be placed in it, "
                          "and delete would kill every process in it",
                          hint='name a cgroup of the container\'s own, e.g. "/pyoci/<id>"')


# The sysctls of an IPC namespace (runc's list, as Podman documents it),
# besides every fs.mqueue.* one.
IPC_SYSCTLS = frozenset({"msgmax", "msgmnb", "msgmni", "sem", "shmall", "shmmax", "shmmni",
                         "shm_rmid_forced"})
# Namespace type -> its file under /proc/<pid>/ns.
NS_FILES = {"network": "net", "ipc": "ipc", "uts": "uts"}


def sysctl_parts(key: str) -> list[str]:
    """The path under /proc/sys a linux.sysctl key names, as components.

    Dots separate them, or slashes as sysctl(8) reads a key that holds one
    (its dots are then part of a name: net/ipv4/conf/eth0.100/forwarding).
    ValueError says why the key names no file under /proc/sys (an empty
    component, ".", "..", a NUL)."""
    if not key:
        raise ValueError("the key is empty")
    if "\0" in key:
        raise ValueError("the key holds a NUL byte")
    parts = key.split("/" if "/" in key else ".")
    for part in parts:
        if part in ("", ".", ".."):
            raise ValueError(f"{_show(part)} is not a name")
    return parts


def sysctl_namespace(parts: list[str]) -> str | None:
    """The namespace type ("network", "ipc", "uts") a sysctl belongs to, or
    None for one that is not namespaced (it would change the host's value)."""
    if parts[0] == "net" and len(parts) > 1:
        return "network"
    if parts[:2] == ["fs", "mqueue"] and len(parts) > 2:
        return "ipc"
    if len(parts) == 2 and parts[0] == "kernel":
        if parts[1] in IPC_SYSCTLS:
            return "ipc"
        if parts[1] in ("hostname", "domainname"):
            return "uts"
    return None


def is_host_namespace(path: str, ns_type: str) -> bool:
    """True when the namespace file at ``path`` is the runtime's own
    namespace of that type, or pid 1's (joining it shares the host's);
    False when it is another, or cannot be read (joining it will fail with
    that error)."""
    try:
        theirs = os.stat(path)
    except OSError:
        return False
    for pid in ("self", "1"):
        try:
            host = os.stat(f"/proc/{pid}/ns/{NS_FILES[ns_type]}")
        except OSError:
            continue  # pid 1's, for a rootless caller
        if (theirs.st_dev, theirs.st_ino) == (host.st_dev, host.st_ino):
            return True
    return False


def _owns_namespace(cfg: Config, ns_type: str, cache: dict[str, bool]) -> bool:
    """True when the container has a namespace of that type that is not the
    host's: a new one, or one joined by a path that is not the runtime's own."""
    if ns_type not in cache:
        ns = _namespace(cfg, ns_type)
        path = ns.get("path") if ns is not None else None
        cache[ns_type] = ns is not None and not (path and is_host_namespace(path, ns_type))
    return cache[ns_type]


def check_sysctl(cfg: Config) -> None:
    """Only sysctls of a namespace the container owns may be set: any other
    would change the host's value (and stay changed after delete)."""
    owned: dict[str, bool] = {}
    for key in _linux(cfg).get("sysctl") or ():
        field = "$.linux.sysctl" + _key(key)
        if not key:
            raise ConfigError("$.linux.sysctl['']", "key must not be empty")
        try:
            parts = sysctl_parts(key)
        except ValueError as e:
            raise ConfigError(field, f"sysctl {_show(key)} names no file under /proc/sys: {e}") from None
        ns_type = sysctl_namespace(parts)
        add = f'add {{"type": "{ns_type}"}} without a path to linux.namespaces'
        if ns_type is None:
            raise ConfigError(field, f"sysctl {_show(key)} is not in a separate kernel namespace",
                              hint="only net.*, fs.mqueue.* and kernel.msg*/sem/shm* ones can be "
                              "set for a container; this one would change the host's value")
        if ns_type == "uts":
            name = parts[1]
            if not _owns_namespace(cfg, "uts", owned):
                raise ConfigError(field, f"sysctl {_show(key)} is not allowed in the host's UTS namespace",
                                  hint=f'set the "{name}" field instead, with a UTS namespace')
            raise ConfigError(field, f"sysctl {_show(key)} is not allowed as it conflicts with the OCI "
                              f'"{name}" field', hint=f'set the "{name}" field instead')
        if _owns_namespace(cfg, ns_type, owned):
            continue
        if ns_type == "network":
            raise ConfigError(field, f"sysctl {_show(key)} not allowed in host network namespace", hint=add)
        raise ConfigError(field, f"sysctl {_show(key)} is not allowed in the host's IPC namespace", hint=add)


def check_seccomp_errno(cfg: Config) -> None:
    """errnoRet only goes with actions that return an errno."""
    seccomp = _linux(cfg).get("seccomp")
    if not isinstance(seccomp, dict):
        return
    if "defaultErrnoRet" in seccomp and seccomp.get("defaultAction") not in ERRNO_ACTIONS:
        raise ConfigError(
            "$.linux.seccomp.defaultErrnoRet",
            f"is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {seccomp.get('defaultAction')}",
        )
    for i, rule in enumerate(seccomp.get("syscalls") or ()):
        if "errnoRet" in rule and rule.get("action") not in ERRNO_ACTIONS:
            raise ConfigError(
                f"$.linux.seccomp.syscalls[{i}].errnoRet",
                f"is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {rule.get('action')}",
            )


def check_personality(cfg: Config) -> None:
    personality = _linux(cfg).get("personality")
    if not isinstance(personality, dict):
        return
    for i, flag in enumerate(personality.get("flags") or ()):
        if flag not in PERSONALITY_FLAGS:
            raise ConfigError(f"$.linux.personality.flags[{i}]",
                              f"unknown personality flag {_show(str(flag))}",
                              hint="one of " + ", ".join(sorted(PERSONALITY_FLAGS)))


# Memory policy modes that take no nodes, and those that need at least one.
MPOL_NO_NODES = frozenset({"MPOL_DEFAULT", "MPOL_LOCAL"})
MPOL_NEED_NODES = frozenset({"MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                             "MPOL_PREFERRED_MANY"})
# The highest node number accepted (Linux's MAX_NUMNODES is at most 1024).
MAX_NUMA_NODE = 1023


def parse_node_list(text: str) -> list[int]:
    """"0-3,7" -> [0, 1, 2, 3, 7]; ValueError with the reason otherwise."""
    nodes: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ValueError("an empty entry")
        lo_text, sep, hi_text = part.partition("-")
        if not lo_text.isdigit() or (sep and not hi_text.isdigit()):
            raise ValueError(f"{_show(part)} is not a node number or a range N-M")
        lo = int(lo_text)
        hi = int(hi_text) if sep else lo
        if lo > hi:
            raise ValueError(f"the range {_show(part)} runs backwards")
        if hi > MAX_NUMA_NODE:
            raise ValueError(f"node {hi} is above {MAX_NUMA_NODE}")
        nodes.update(range(lo, hi + 1))
    return sorted(nodes)


def check_memory_policy(cfg: Config) -> None:
    """runtime-spec "Memory policy": what set_mempolicy(2) would refuse, named by field."""
    mp = _linux(cfg).get("memoryPolicy")
    if not isinstance(mp, dict):
        return
    mode = mp.get("mode")
    text = mp.get("nodes") or ""
    nodes: list[int] = []
    if text:
        try:
            nodes = parse_node_list(text)
        except ValueError as e:
            raise ConfigError("$.linux.memoryPolicy.nodes", f"must be a list such as 0-3,7: {e}") from None
    if mode in MPOL_NO_NODES and nodes:
        raise ConfigError("$.linux.memoryPolicy.nodes", f"{mode} takes no nodes")
    if mode in MPOL_NEED_NODES and not nodes:
        raise ConfigError("$.linux.memoryPolicy.nodes", f"{mode} needs at least one node")
    flags = list(mp.get("flags") or ())
    for i, flag in enumerate(flags):
        if flag not in MPOL_FLAGS:
            raise ConfigError(f"$.linux.memoryPolicy.flags[{i}]", f"unknown flag {_show(str(flag))}")
    if "MPOL_F_STATIC_NODES" in flags and "MPOL_F_RELATIVE_NODES" in flags:
        raise ConfigError("$.linux.memoryPolicy.flags",
                          "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")
    if not nodes and ("MPOL_F_STATIC_NODES" in flags or "MPOL_F_RELATIVE_NODES" in flags):
        raise ConfigError("$.linux.memoryPolicy.flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES "
                          "need nodes")


# Bytes the kernel refuses in a network device name (net/core/dev.c
# dev_valid_name: '/', ':' and what its isspace() calls space, 0xa0 included).
_IFNAME_BAD = frozenset(b"/: \t\n\v\f\r\xa0\x00")
IFNAMSIZ = 16


def ifname_problem(name: object, template: bool = False) -> str | None:
    """Why the kernel would refuse ``name`` as a network device name, or None.
    With ``template``, one "%d" (the kernel picks the number) is allowed."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) >= IFNAMSIZ:
        return f"is {len(raw)} bytes long; a network device name has at most {IFNAMSIZ - 1}"
    if name in (".", ".."):
        return "cannot be . or .."
    if any(b in _IFNAME_BAD for b in raw):
        return "must not contain '/', ':', whitespace or NUL"
    if "%" in name and (not template or name.count("%") != 1 or "%d" not in name):
        return ("may hold '%' only as one \"%d\" (a template the kernel numbers)" if template
                else "must not contain '%' (no existing device has it)")
    return None


def check_net_devices(cfg: Config) -> None:
    """linux.netDevices: valid names, no two moved to the same name (nor to
    lo, which every network namespace has), and a network namespace of the
    container's own to move them into (runc: "unable to move network devices
    without a private NET namespace").  Whether the devices exist and the
    caller may move them is the host's business (pyoci.linux.netdev)."""
    devices = _linux(cfg).get("netDevices")
    if not devices:
        return
    targets: dict[str, str] = {}
    for host_name, dev in devices.items():
        field = "$.linux.netDevices" + _key(host_name)
        problem = ifname_problem(host_name)
        if problem:
            raise ConfigError(field, f"the host device name {_show(host_name)} {problem}")
        if host_name == "lo":
            raise ConfigError(field, "the loopback device cannot leave its network namespace "
                              "(the container gets its own lo)")
        name = dev.get("name") or host_name
        if dev.get("name") is not None:
            problem = ifname_problem(dev["name"], template=True)
            if problem:
                raise ConfigError(field + ".name", f"{_show(dev['name'])} {problem}")
        if name == "lo":
            raise ConfigError(field + (".name" if dev.get("name") else ""),
                              'a device cannot be moved in as "lo": every network namespace has '
                              "its own loopback device", hint="choose another name")
        if "%" not in name:
            if name in targets:
                raise ConfigError(field, f"moves a device in as {_show(name)}, as "
                                  f"$.linux.netDevices{_key(targets[name])} does",
                                  hint="give each device its own name")
            targets[name] = host_name
    if not _owns_namespace(cfg, "network", {}):
        raise ConfigError("$.linux.netDevices", "unable to move network devices without a private "
                          "network namespace: the container would share the host's",
                          hint='add {"type": "network"} to linux.namespaces')


CHECKS: list[Callable[[Config], None]] = [
    check_root_present,
    check_root_path,
    check_process_cwd,
    check_process_user,
    check_process_env,
    check_process_rlimits,
    check_process_io_priority,
    check_process_scheduler,
    check_mount_destinations,
    check_mount_idmap,
    check_masked_paths,
    check_readonly_paths,
    check_hook_paths,
    check_namespace_types,
    check_namespace_paths,
    check_user_namespace_mappings,
    check_hostname_uts,
    check_domainname_uts,
    check_time_offsets,
    check_devices,
    check_id_mappings,
    check_cgroups_path,
    check_sysctl,
    check_seccomp_errno,
    check_personality,
    check_memory_policy,
    check_net_devices,
]


def check_config(cfg: Config) -> None:
    """Run every check in CHECKS; the first failure raises ConfigError."""
    for check in CHECKS:
        check(cfg)


def check_lsm(cfg: dict[str, Any]) -> None:
    """A requested LSM label the host cannot apply is an error, never ignored
    (config.json at create; the process of `exec`, flags included)."""
    process = cfg.get("process") or {}
    if process.get("apparmorProfile"):
        try:
            with open("/sys/module/apparmor/parameters/enabled") as f:
                enabled = f.read().strip() == "Y"
        except OSError:
            enabled = False
        if not enabled:
            raise ConfigError("$.process.apparmorProfile",
                              f"profile {process['apparmorProfile']!r} requested, but AppArmor is not "
                              "enabled on this host", hint="remove the field or enable AppArmor")
        raise ConfigError("$.process.apparmorProfile", "AppArmor profiles are not supported by pyoci yet")
    for field, value in (("$.process.selinuxLabel", process.get("selinuxLabel")),
                         ("$.linux.mountLabel", (cfg.get("linux") or {}).get("mountLabel"))):
        if value:
            enabled = os.path.exists("/sys/fs/selinux/enforce")
            raise ConfigError(field, f"label {value!r} requested, but "
                              + ("SELinux labels are not supported by pyoci yet" if enabled
                                 else "SELinux is not enabled on this host"),
                              hint="remove the field")


def has_limits(resources: dict[str, Any]) -> bool:
    """Anything beyond an empty object or Podman's default deny-all device rule."""
    for key, value in resources.items():
        if key == "devices" and all(not r.get("allow") and r.get("type", "a") == "a" for r in value):
            continue
        if value:
            return True
    return False
