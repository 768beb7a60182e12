"""cgroup v2 (the unified hierarchy): linux.resources -> files, the writer,
controller enabling, the freezer and rootless delegation.

The runtime-spec describes resources in cgroup v1 terms; on v2 pyoci
converts them as runc does where the two differ:

==========================================  ======================================================
field                                       v2 file (value)
==========================================  ======================================================
pids.limit                                  pids.max (0 or less: max)
memory.limit / reservation                  memory.max / memory.low (-1: max; 0: unset)
memory.swap (memory + swap, as in v1)       memory.swap.max = swap - limit (-1: max)
memory.disableOOMKiller true                refused: v2 cannot disable the OOM killer
memory.swappiness, kernel, kernelTCP,       ignored, as runc does (v2 has no such knob)
useHierarchy
memory.checkBeforeUpdate                    a limit at or below memory.current is refused
cpu.shares                                  cpu.weight (formula below)
cpu.quota / cpu.period                      cpu.max "QUOTA PERIOD" (quota -1: max)
cpu.burst                                   cpu.max.burst
cpu.idle                                    cpu.idle (cpu.weight is not written when idle != 0)
cpu.realtimeRuntime / realtimePeriod        refused (no realtime budget in v2)
cpu.cpus / cpu.mems                         cpuset.cpus / cpuset.mems
blockIO.weight                              io.bfq.weight, or io.weight = 1 + (w - 10) * 9999 // 990
blockIO.weightDevice[]                      the same files, "MAJ:MIN WEIGHT"
blockIO.throttle{Read,Write}{Bps,IOPS}      io.max "MAJ:MIN rbps|wbps|riops|wiops=RATE" (0: max)
blockIO.leafWeight                          refused (no leaf weight in v2)
hugepageLimits[]                            hugetlb.<size>.max (and .rsvd.max when present)
rdma                                        rdma.max "DEVICE hca_handle=N hca_object=M"
network                                     refused (net_cls/net_prio are v1 only)
unified                                     written verbatim, last; the key must be a plain file
                                            name of the form CONTROLLER.PARAMETER
devices                                     an eBPF program (pyoci/cgroups/bpfdev.py)
==========================================  ======================================================

cpu.shares -> cpu.weight: the formula of opencontainers/cgroups since
v0.0.2 (runc 1.3.1 and later, crun 1.23 and later): a quadratic in log2 that maps
2 -> 1, 1024 (the v1 default) -> 100 (the v2 default) and 262144 -> 10000.
The older linear formula, 1 + (shares - 2) * 9999 // 262142, gave a default
container a weight of 39, below the 100 of every process outside it.

Controllers: before writing, the controllers the files belong to are enabled
in cgroup.subtree_control of every ancestor, from the root of the hierarchy
down to the container's parent (as runc does; runc enables every available
one, pyoci the ones it needs).  A failure there is not an error by itself:
the write that needs the controller then fails, and its error names the
field, the missing file, and why the controller is not enabled.
"""

from __future__ import annotations

import os

from pyoci.errors import ConfigError, PyociError
from pyoci.linux.proc import write_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyoci.cgroups.common import Layout

EPERM, ENOENT, EACCES, EBUSY, EINVAL = 1, 2, 13, 16, 22
F = "$.linux.resources"


class Write:
    """One write of ``value`` to ``file`` in the container's cgroup, for ``field``."""

    __slots__ = ("file", "value", "field", "missing_ok", "by_line")

    def __init__(self, file: str, value: str, field: str, missing_ok: bool = False,
                 by_line: bool = False) -> None:
        self.file = file
        self.value = value
        self.field = field
        self.missing_ok = missing_ok    # a kernel without the file: nothing to do
        self.by_line = by_line          # one write(2) per line (unified values)

    def astuple(self) -> tuple[str, str, str]:
        return (self.file, self.value, self.field)

    def __repr__(self) -> str:
        return f"Write({self.file!r}, {self.value!r}, {self.field!r})"


# -- conversions --------------------------------------------------------------------------------


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) -> cpu.weight (1..10000), as opencontainers/cgroups
    (runc >= 1.3.1): 10 ** ((l*l + 125*l) / 612 - 7/34) rounded up, l = log2(shares)."""
    import math

    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    lg = math.log2(shares)
    return int(math.ceil(10 ** ((lg * lg + 125 * lg) / 612.0 - 7.0 / 34.0)))


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), linearly, as runc."""
    return 1 + (weight - 10) * 9999 // 990


def swap_max(swap: int, memory: int, field: str) -> int | None:
    """memory.swap (memory + swap, the v1 meaning) -> memory.swap.max, as runc's
    ConvertMemorySwapToCgroupV2Value; 0 means unset, -1 unlimited.  None:
    nothing to write."""
    if memory == -1 and swap == 0:
        return -1               # unlimited memory and no swap value: unlimited swap too
    if swap in (-1, 0):
        return None if swap == 0 else -1
    if memory == -1:
        return swap
    if memory == 0:
        raise ConfigError(field, f"{swap} (memory + swap) needs memory.limit: v2 limits swap "
                          "alone (memory.swap.max = swap - limit)")
    if swap < memory:
        raise ConfigError(field, f"{swap} is below memory.limit {memory}: it is the limit of memory "
                          "and swap together, so it must be at least memory.limit")
    return swap - memory


def _max(value: int) -> str:
    return "max" if value == -1 else str(value)


# -- resources -> writes ----------------------------------------------------------------------

KNOWN: dict[str, frozenset[str]] = {
    "memory": frozenset({"limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
                         "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"}),
    "cpu": frozenset({"shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod",
                      "cpus", "mems", "idle"}),
    "pids": frozenset({"limit"}),
    "blockIO": frozenset({"weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                          "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"}),
    "network": frozenset({"classID", "priorities"}),
}
SECTIONS = frozenset({"devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network",
                      "rdma", "unified"})
THROTTLES = (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
             ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops"))


def _int(value: Any, field: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an integer, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(field, f"must be from {low} to {high}, not {value}" if high is not None
                          else f"must be at least {low}, not {value}")
    return value


def _bytes(value: Any, field: str) -> int:
    v = _int(value, field)
    if v < -1:
        raise ConfigError(field, f"must be -1 (unlimited) or a number of bytes, not {v}")
    return v


def _device(entry: dict[str, Any], field: str) -> str:
    major = _int(entry.get("major"), f"{field}.major", 0)
    minor = _int(entry.get("minor"), f"{field}.minor", 0)
    return f"{major}:{minor}"


def _page_size(value: Any, field: str) -> str:
    ok = (isinstance(value, str) and len(value) > 2 and value[-2:] in ("KB", "MB", "GB")
          and value[:-2].isdigit() and value[:-2].isascii() and value[0] != "0")
    if not ok:
        raise ConfigError(field, f"must be a page size such as 2MB, 1GB or 64KB, not {value!r}")
    return str(value)


def unified_key(key: Any, field: str) -> str:
    """A key of linux.resources.unified: a plain file name CONTROLLER.PARAMETER."""
    if (not isinstance(key, str) or not key or "/" in key or "\0" in key or key in (".", "..")
            or "." not in key.strip(".") or key.startswith(".") or key.endswith(".")
            or any(c.isspace() for c in key)):
        raise ConfigError(field, f"{key!r} is not a cgroup file name of the form CONTROLLER.PARAMETER "
                          "(such as memory.high)")
    return key


def plan(resources: dict[str, Any], *, bfq: bool = False,
         current: dict[str, str] | None = None) -> list[Write]:
    """The writes that apply ``resources`` on cgroup v2, in order.

    Pure: ``bfq`` says whether the cgroup has io.bfq.weight (the BFQ
    scheduler), ``current`` holds the cgroup's cpu.max and memory.max where
    a field needs them (update of cpu.period alone keeps the quota; of
    memory.swap alone subtracts the current limit).  A field v2 cannot
    express raises ConfigError naming it; devices are not files (see
    bpfdev) and are only checked here."""
    cur = current or {}
    out: list[Write] = []
    for section in resources:
        if section not in SECTIONS:
            raise ConfigError(f"{F}.{section}", "is not a linux.resources field pyoci knows")
    for section, keys in KNOWN.items():
        for key, value in (resources.get(section) or {}).items():
            if key not in keys and value is not None:
                raise ConfigError(f"{F}.{section}.{key}", "is not a linux.resources field pyoci knows")

    pids = resources.get("pids") or {}
    if pids.get("limit") is not None:
        limit = _int(pids["limit"], f"{F}.pids.limit")
        out.append(Write("pids.max", "max" if limit <= 0 else str(limit), f"{F}.pids.limit"))

    out += _memory(resources.get("memory") or {}, cur)
    out += _cpu(resources.get("cpu") or {}, cur)
    out += _io(resources.get("blockIO") or {}, bfq)

    for i, h in enumerate(resources.get("hugepageLimits") or []):
        field = f"{F}.hugepageLimits[{i}]"
        size = _page_size(h.get("pageSize"), f"{field}.pageSize")
        limit = _int(h.get("limit"), f"{field}.limit", 0)
        out.append(Write(f"hugetlb.{size}.max", str(limit), field))
        out.append(Write(f"hugetlb.{size}.rsvd.max", str(limit), field, missing_ok=True))

    for name, r in (resources.get("rdma") or {}).items():
        field = f"{F}.rdma[{name!r}]"
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ConfigError(field, "an RDMA device name must be non-empty and without spaces")
        line = name
        if (r or {}).get("hcaHandles") is not None:
            line += f" hca_handle={_int(r['hcaHandles'], f'{field}.hcaHandles', 0)}"
        if (r or {}).get("hcaObjects") is not None:
            line += f" hca_object={_int(r['hcaObjects'], f'{field}.hcaObjects', 0)}"
        if line != name:
            out.append(Write("rdma.max", line, field))

    network = resources.get("network") or {}
    if network.get("classID") is not None or network.get("priorities"):
        key = "classID" if network.get("classID") is not None else "priorities"
        raise ConfigError(f"{F}.network.{key}", "cgroup v2 has no net_cls or net_prio controller "
                          "(runc refuses it too)", hint="tag or prioritise the container's traffic "
                          "with its network namespace (tc, nftables) instead; remove the field")

    devices = resources.get("devices")
    if devices:
        from pyoci.cgroups import bpfdev

        for i, rule in enumerate(devices):
            bpfdev.parse_rule(rule, f"{F}.devices[{i}]")

    for key, value in (resources.get("unified") or {}).items():
        field = f"{F}.unified[{key!r}]"
        unified_key(key, field)
        if not isinstance(value, str):
            raise ConfigError(field, f"must be a string, not {value!r}")
        out.append(Write(key, value, field, by_line=True))
    return out


def _memory(mem: dict[str, Any], cur: dict[str, str]) -> list[Write]:
    out: list[Write] = []
    if mem.get("disableOOMKiller"):
        raise ConfigError(f"{F}.memory.disableOOMKiller", "cgroup v2 cannot disable the OOM killer",
                          hint="remove the field (memory.oom.group, set through "
                               "linux.resources.unified, kills the whole container instead)")
    limit = 0 if mem.get("limit") is None else _bytes(mem["limit"], f"{F}.memory.limit")
    swap = 0 if mem.get("swap") is None else _bytes(mem["swap"], f"{F}.memory.swap")
    reservation = 0 if mem.get("reservation") is None else _bytes(mem["reservation"],
                                                                    f"{F}.memory.reservation")
    memory_for_swap = limit
    if limit == 0 and swap not in (0, -1):
        now = cur.get("memory.max", "")
        memory_for_swap = -1 if now == "max" else int(now) if now.isdigit() else 0
    if mem.get("swap") is not None or limit == -1:
        s = swap_max(swap, memory_for_swap, f"{F}.memory.swap")
        if s is not None:
            value = _max(s)
            # Without swap accounting the file is missing: "max" or "0" then mean
            # what the kernel does anyway (runc ignores them too).
            out.append(Write("memory.swap.max", value, f"{F}.memory.swap", missing_ok=value in ("max", "0")))
    if limit:
        out.append(Write("memory.max", _max(limit), f"{F}.memory.limit"))
    if reservation:
        out.append(Write("memory.low", _max(reservation), f"{F}.memory.reservation"))
    return out


def _cpu(cpu: dict[str, Any], cur: dict[str, str]) -> list[Write]:
    out: list[Write] = []
    for key in ("realtimeRuntime", "realtimePeriod"):
        if cpu.get(key):
            raise ConfigError(f"{F}.cpu.{key}", "cgroup v2 has no realtime CPU budget "
                              "(cpu.rt_runtime_us and cpu.rt_period_us are v1 only)",
                              hint="remove the field")
    idle = None if cpu.get("idle") is None else _int(cpu["idle"], f"{F}.cpu.idle")
    if idle is not None:
        out.append(Write("cpu.idle", str(idle), f"{F}.cpu.idle"))
    shares = cpu.get("shares")
    if shares and not idle:        # the kernel refuses a weight for an idle cgroup
        w = shares_to_weight(_int(shares, f"{F}.cpu.shares", 0))
        out.append(Write("cpu.weight", str(w), f"{F}.cpu.shares"))
    if cpu.get("burst") is not None:
        out.append(Write("cpu.max.burst", str(_int(cpu["burst"], f"{F}.cpu.burst", 0)), f"{F}.cpu.burst"))
    quota = 0 if cpu.get("quota") is None else _int(cpu["quota"], f"{F}.cpu.quota")
    period = 0 if cpu.get("period") is None else _int(cpu["period"], f"{F}.cpu.period", 0)
    if quota or period:
        if quota > 0:
            value = str(quota)
        elif quota < 0:
            value = "max"
        else:
            value = (cur.get("cpu.max") or "max").split()[0]      # keep the current quota
        if period:
            value += f" {period}"
        field = f"{F}.cpu.quota" if quota else f"{F}.cpu.period"
        out.append(Write("cpu.max", value, field))
    if cpu.get("cpus"):
        out.append(Write("cpuset.cpus", str(cpu["cpus"]), f"{F}.cpu.cpus"))
    if cpu.get("mems"):
        out.append(Write("cpuset.mems", str(cpu["mems"]), f"{F}.cpu.mems"))
    return out


def _io(blkio: dict[str, Any], bfq: bool) -> list[Write]:
    out: list[Write] = []
    if blkio.get("leafWeight"):
        raise ConfigError(f"{F}.blockIO.leafWeight", "cgroup v2 has no leaf weight", hint="remove the field")
    weight = blkio.get("weight")
    if weight:
        w = _int(weight, f"{F}.blockIO.weight", 10, 1000)
        if bfq:
            out.append(Write("io.bfq.weight", str(w), f"{F}.blockIO.weight"))
        else:
            out.append(Write("io.weight", str(blkio_to_io_weight(w)), f"{F}.blockIO.weight"))
    for i, wd in enumerate(blkio.get("weightDevice") or []):
        field = f"{F}.blockIO.weightDevice[{i}]"
        if wd.get("leafWeight"):
            raise ConfigError(f"{field}.leafWeight", "cgroup v2 has no leaf weight", hint="remove the field")
        if not wd.get("weight"):
            continue
        dev = _device(wd, field)
        w = _int(wd["weight"], f"{field}.weight", 10, 1000)
        if bfq:
            out.append(Write("io.bfq.weight", f"{dev} {w}", field))
        else:
            out.append(Write("io.weight", f"{dev} {blkio_to_io_weight(w)}", field))
    for key, name in THROTTLES:
        for i, t in enumerate(blkio.get(key) or []):
            field = f"{F}.blockIO.{key}[{i}]"
            rate = _int(t.get("rate"), f"{field}.rate", 0)
            # v1 removes a throttle written as 0; io.max refuses 0 and says max.
            out.append(Write("io.max", f"{_device(t, field)} {name}={rate or 'max'}", field))
    return out


def controllers(writes: list[Write]) -> list[str]:
    """The controllers the writes need, in order (core cgroup.* files need none)."""
    out: list[str] = []
    for w in writes:
        c = w.file.split(".", 1)[0]
        if c != "cgroup" and c not in out:
            out.append(c)
    return out


def check(resources: dict[str, Any]) -> None:
    """Before anything exists: refuse what v2 cannot express."""
    plan(resources)


# -- the writer -------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def ancestors(mount: str, cgroup_dir: str) -> list[str]:
    """The directories from the hierarchy's root down to cgroup_dir's parent."""
    rel = os.path.relpath(cgroup_dir, mount)
    parts = [] if rel == "." else rel.split("/")
    return [os.path.join(mount, *parts[:i]) if i else mount for i in range(len(parts))]


def enable_controllers(mount: str, cgroup_dir: str, wanted: list[str]) -> dict[str, tuple[str, int]]:
    """Write +CONTROLLER to cgroup.subtree_control of each ancestor that lacks
    it; returns, per controller that could not be enabled, the directory and
    errno of the first failure."""
    failed: dict[str, tuple[str, int]] = {}
    for d in ancestors(mount, cgroup_dir):
        have = _read(os.path.join(d, "cgroup.subtree_control")).split()
        for c in wanted:
            if c in have or c in failed:
                continue
            try:
                write_text(os.path.join(d, "cgroup.subtree_control"), "+" + c)
            except OSError as e:
                failed[c] = (d, e.errno or EINVAL)
    return failed


def _missing(w: Write, cgroup_dir: str, mount: str, failed: dict[str, tuple[str, int]],
             rootless: bool) -> PyociError:
    """The error for a file that is not there: which controller is missing where."""
    path = os.path.join(cgroup_dir, w.file)
    ctrl = w.file.split(".", 1)[0]
    parent = os.path.dirname(cgroup_dir)
    available = _read(os.path.join(mount, "cgroup.controllers")).split()
    what = f"{w.field}: {path} does not exist"
    if ctrl == "cgroup":
        return PyociError(f"{what}: this kernel has no such file", field=w.field, path=path,
                          hint="remove the field")
    if ctrl not in available:
        return PyociError(f"{what}: this host's cgroup v2 has no {ctrl} controller "
                          f"({mount}/cgroup.controllers: {' '.join(available) or 'none'})",
                          field=w.field, path=path, hint="remove the field")
    enabled = _read(os.path.join(parent, "cgroup.subtree_control")).split()
    if ctrl in enabled:
        return PyociError(f"{what}: the {ctrl} controller is enabled, but this kernel has no such "
                          "file", field=w.field, path=path, hint="remove the field")
    msg = (f"{what}: the {ctrl} controller is not enabled in {parent}/cgroup.subtree_control "
           f"(it has: {' '.join(enabled) or 'none'})")
    hint = None
    if ctrl in failed:
        where, err = failed[ctrl]
        msg += f"; enabling it in {where}/cgroup.subtree_control failed: {os.strerror(err)}"
        if err == EBUSY:
            hint = (f"{where} has processes of its own, and cgroup v2 enables controllers only for "
                    "cgroups whose parent has none: put the container elsewhere (linux.cgroupsPath)")
        elif err == ENOENT:
            hint = f"{where}/cgroup.controllers does not offer {ctrl}: its parent must enable it first"
        elif err in (EPERM, EACCES) and rootless:
            hint = (f"the {ctrl} controller is not delegated to you; as root: echo +{ctrl} > "
                    f"{where}/cgroup.subtree_control (systemd: Delegate= in user@.service)")
    return PyociError(msg, field=w.field, path=path, hint=hint or "remove the field")


def write(cgroup_dir: str, writes: list[Write], mount: str,
          failed: dict[str, tuple[str, int]] | None = None, rootless: bool = False) -> None:
    """Write each value; an EINVAL is retried once after the others (cpu.max.burst
    above the current quota, a quota below the current burst)."""
    later: list[Write] = []
    for w in writes:
        err = _write_one(cgroup_dir, w)
        if err == EINVAL:
            later.append(w)
        elif err:
            raise _error(w, err, cgroup_dir, mount, failed or {}, rootless)
    for w in later:
        err = _write_one(cgroup_dir, w)
        if err:
            raise _error(w, err, cgroup_dir, mount, failed or {}, rootless)


def _write_one(cgroup_dir: str, w: Write) -> int:
    path = os.path.join(cgroup_dir, w.file)
    lines = [ln for ln in w.value.split("\n") if ln] if w.by_line and "\n" in w.value else [w.value]
    try:
        for line in lines:
            write_text(path, line)
    except FileNotFoundError:
        return 0 if w.missing_ok else ENOENT
    except OSError as e:
        return e.errno or EINVAL
    return 0


def _error(w: Write, err: int, cgroup_dir: str, mount: str, failed: dict[str, tuple[str, int]],
           rootless: bool) -> PyociError:
    if err == ENOENT:
        return _missing(w, cgroup_dir, mount, failed, rootless)
    path = os.path.join(cgroup_dir, w.file)
    hint = None
    if err in (EPERM, EACCES) and rootless:
        hint = f"{path} is not writable by you: the subtree is not fully delegated"
    return PyociError(f"{w.field}: write {w.value!r} to {path}", op="write", path=path, field=w.field,
                      errno=err, hint=hint)


def apply(resources: dict[str, Any], cgroup_dir: str, mount: str,
          nodes: list[dict[str, Any]] | None = None, rootless: bool = False) -> None:
    """Apply linux.resources to the container's cgroup2 directory (before
    the container's process joins it, and at update)."""
    if not resources:
        return
    # What update needs to know of the cgroup's present values (see plan).
    current: dict[str, str] = {}
    cpu = resources.get("cpu") or {}
    mem = resources.get("memory") or {}
    if cpu.get("period") and not cpu.get("quota"):
        current["cpu.max"] = _read(os.path.join(cgroup_dir, "cpu.max"))
    if mem.get("swap") not in (None, 0, -1) and not mem.get("limit"):
        current["memory.max"] = _read(os.path.join(cgroup_dir, "memory.max"))
    first = plan(resources, current=current)    # checks everything; names the controllers
    failed = enable_controllers(mount, cgroup_dir, controllers(first))
    if mem.get("checkBeforeUpdate"):
        _check_usage(cgroup_dir, mem)
    bfq = os.path.exists(os.path.join(cgroup_dir, "io.bfq.weight"))
    writes = plan(resources, bfq=True, current=current) if bfq else first
    write(cgroup_dir, writes, mount, failed, rootless)
    devices = resources.get("devices")
    if devices and not rootless:
        # Device programs need CAP_SYS_ADMIN in the initial user namespace; in
        # a user namespace the host's device nodes keep their own permissions
        # (runc ignores device errors for rootless containers too).
        from pyoci.cgroups import bpfdev

        bpfdev.apply(cgroup_dir, devices, nodes)


def _check_usage(cgroup_dir: str, mem: dict[str, Any]) -> None:
    """memory.checkBeforeUpdate: refuse a limit at or below the current usage."""
    usage = _read(os.path.join(cgroup_dir, "memory.current"))
    if not usage.isdigit():
        return                                  # best effort, as runc
    for key in ("limit", "swap"):
        value = mem.get(key)
        if isinstance(value, int) and value > 0 and value <= int(usage):
            raise PyociError(f"{F}.memory.{key}: {value} is not above the container's current memory "
                             f"usage {usage} ({cgroup_dir}/memory.current), and "
                             "memory.checkBeforeUpdate is set", field=f"{F}.memory.{key}")


# -- layout, delegation, freezer --------------------------------------------------------------


def delegated(lay: Layout, paths: dict[str, str], own: str | None = None) -> bool:
    """Whether this (unprivileged) caller can make and use the container's
    cgroup2 directory: a v2 host, the nearest existing directory on the way to
    it writable, and the cgroup.procs of the common ancestor of the caller's
    own cgroup and the target writable (the kernel's rule for moving a
    process between cgroups)."""
    from pyoci.cgroups.common import is_v2

    target = paths.get("")
    if not is_v2(lay) or not target or lay.unified is None:
        return False
    d = target
    while not os.path.isdir(d):
        parent = os.path.dirname(d)
        if parent == d:
            return False
        d = parent
    if not (d + "/").startswith(lay.unified.rstrip("/") + "/"):
        return False
    if not os.access(d, os.W_OK | os.X_OK) or not os.access(os.path.join(d, "cgroup.procs"), os.W_OK):
        return False
    if own is None:
        from pyoci.cgroups.common import own_cgroups

        own = own_cgroups().get("", "/")
    mine = os.path.normpath(lay.unified + "/" + own.lstrip("/"))
    common = os.path.commonpath([mine, target])
    return os.access(os.path.join(common, "cgroup.procs"), os.W_OK)


def freeze(path: str, frozen: bool, timeout: float = 5.0) -> None:
    """Write cgroup.freeze and wait until cgroup.events says the cgroup is
    (un)frozen: the kernel freezes asynchronously.  A freeze that does not
    complete is undone, so a container is never left half frozen."""
    import time

    _freeze_write(path, "1" if frozen else "0")
    events = os.path.join(os.path.dirname(path), "cgroup.events")
    want = "frozen 1" if frozen else "frozen 0"
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        text = _read(events)
        if not text or want in text.splitlines():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    if frozen:
        _freeze_write(path, "0")
    raise PyociError(f"{os.path.dirname(path)} did not become {'frozen' if frozen else 'thawed'} "
                     f"within {timeout:g} s ({events})",
                     hint="a process stuck in the kernel (uninterruptible sleep) delays the freezer")


def _freeze_write(path: str, value: str) -> None:
    try:
        write_text(path, value)
    except OSError as e:
        raise PyociError(f"write {value!r} to {path}", op="write", path=path, errno=e.errno) from None
