"""linux.resources on cgroup v1: every field, with runc's conversions.

One function per controller, called in runc's order (cpuset, memory, cpu,
pids, blkio, hugetlb, net_cls, net_prio, rdma, then the hybrid layout's
cgroup2 ``unified`` keys; device rules: apply below).  A value of 0
means "not set" wherever runc reads it so (memory limit, reservation and
swap, cpu shares, period, quota and realtime values, blkio weights).

A field whose controller is not mounted, or whose file this kernel lacks, is
an error naming the field and the file; so is a file the kernel refuses,
with errno's text and, where the cause is known, a hint.
"""

from __future__ import annotations

import os

from pyoci.cgroups.common import (
    DEFAULT_ALLOWED,
    FIELDS,
    IGNORED,
    check_supported,
    controller_dirs,
    write_value,
)
from pyoci.errors import PyociError
from pyoci.linux.proc import write_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyoci.cgroups.common import Layout

EINVAL = 22
EBUSY = 16
ENOENT = 2

# Why a v1 file may be missing on a kernel that has its controller.
MISSING_HINTS = {
    "memory.memsw.limit_in_bytes": "swap accounting is off: boot with swapaccount=1, or drop the swap limit",
    "blkio.leaf_weight": "leaf weights went away with the CFQ scheduler (Linux 5.0): drop the field",
    "blkio.leaf_weight_device": "leaf weights went away with the CFQ scheduler (Linux 5.0): drop the field",
    "blkio.weight": "weights need the BFQ I/O scheduler (blkio.bfq.weight): load it or drop the field",
    "blkio.weight_device": "weights need the BFQ I/O scheduler (blkio.bfq.weight): load it or drop the field",
    "memory.kmem.tcp.limit_in_bytes": "the kernel was built without kernel memory accounting: "
                                      "drop the field",
    "cpu.cfs_burst_us": "CFS burst needs Linux 5.14",
    "cpu.idle": "cpu.idle needs Linux 5.15",
    "cpu.rt_runtime_us": "the kernel was built without CONFIG_RT_GROUP_SCHED: drop the realtime fields",
    "cpu.rt_period_us": "the kernel was built without CONFIG_RT_GROUP_SCHED: drop the realtime fields",
}


def is_unset_swappiness(value: Any) -> bool:
    """runc skips swappiness -1 (or its uint64 reading, 2**64-1)."""
    return value is None or int(value) in (-1, 2 ** 64 - 1)


def blkio_device_line(entry: dict[str, Any], key: str) -> str:
    """``major:minor value`` as blkio.*_device files take it."""
    return f"{int(entry['major'])}:{int(entry['minor'])} {int(entry[key])}"


def rdma_line(device: str, limits: dict[str, Any]) -> str:
    """One line of rdma.max: ``dev hca_handle=N hca_object=M`` (the set ones)."""
    line = device
    if limits.get("hcaHandles") is not None:
        line += f" hca_handle={int(limits['hcaHandles'])}"
    if limits.get("hcaObjects") is not None:
        line += f" hca_object={int(limits['hcaObjects'])}"
    return line


def memory_order(limit: int | None, swap: int | None, current_limit: int) -> list[str]:
    """The order to write memory.limit_in_bytes ("limit") and
    memory.memsw.limit_in_bytes ("swap"): the kernel wants limit <= memsw at
    every step, so a growing memsw goes first (as runc does)."""
    if limit is not None and swap is not None and (swap == -1 or current_limit < swap):
        return ["swap", "limit"]
    return [k for k, v in (("limit", limit), ("swap", swap)) if v is not None]


def _nonzero(section: dict[str, Any], key: str) -> int | None:
    value = section.get(key)
    if value is None or int(value) == 0:
        return None
    return int(value)


class Writer:
    """Writes one linux.resources object to a container's v1 cgroups.

    ``dirs``: controller -> the container's directory in that hierarchy
    (every controller of a co-mounted hierarchy listed); ``prefix``: how
    fields are named in errors (``$.linux.resources`` for create, ``update
    --resources`` for update)."""

    def __init__(self, resources: dict[str, Any], dirs: dict[str, str], lay: Layout,
                 prefix: str, update: bool) -> None:
        self.res = resources
        self.dirs = dirs
        self.lay = lay
        self.prefix = prefix
        self.update = update

    # -- helpers ------------------------------------------------------------
    def field(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def dir(self, ctrl: str, field: str) -> str:
        d = self.dirs.get(ctrl)
        if d is not None:
            return d
        where = ""
        if ctrl in _v2_controllers(self.lay):
            where = (f"; on this host {ctrl} belongs to the cgroup2 hierarchy "
                     f"({self.lay.unified}), which pyoci uses on a hybrid host for placement only")
        raise PyociError(f"{self.field(field)}: the {ctrl} cgroup v1 controller is not mounted{where}",
                         field=self.field(field),
                         hint=f"mount it with `mount -t cgroup -o {ctrl} {ctrl} /sys/fs/cgroup/{ctrl}`, "
                              "or drop the field")

    def try_write(self, path: str, value: str) -> int:
        """0, or the errno of a refused write."""
        try:
            write_text(path, value)
        except OSError as e:
            return e.errno or EINVAL
        return 0

    def fail(self, field: str, path: str, value: str, errno: int, hint: str | None = None) -> PyociError:
        fname = os.path.basename(path)
        if errno == ENOENT:
            return PyociError(f"{self.field(field)}: {path} does not exist", field=self.field(field),
                              path=path, hint=MISSING_HINTS.get(fname, "this kernel lacks the file: "
                                                                 "drop the field"))
        return PyociError(f"{self.field(field)}: write {value!r} to {path}", op="write", path=path,
                          field=self.field(field), errno=errno, hint=hint)

    def write(self, ctrl: str, fname: str, value: str, field: str, hint: str | None = None) -> None:
        path = os.path.join(self.dir(ctrl, field), fname)
        errno = self.try_write(path, value)
        if errno:
            raise self.fail(field, path, value, errno, hint)

    def read_int(self, path: str) -> int:
        with open(path) as f:
            text = f.read().strip()
        return -1 if text == "max" else int(text)

    # -- controllers --------------------------------------------------------
    def apply(self) -> None:
        self.cpuset()
        self.memory()
        self.cpu()
        self.pids()
        self.blkio()
        self.hugetlb()
        self.network()
        self.rdma()
        self.unified()

    def cpuset(self) -> None:
        cpu = self.res.get("cpu") or {}
        hint = "it must be a subset of the parent cgroup's cpuset (see /sys/devices/system/cpu/online)"
        if cpu.get("cpus"):
            self.write("cpuset", "cpuset.cpus", str(cpu["cpus"]), "cpu.cpus", hint)
        if cpu.get("mems"):
            self.write("cpuset", "cpuset.mems", str(cpu["mems"]), "cpu.mems",
                       "it must be a subset of the parent cgroup's cpuset.mems "
                       "(see /sys/devices/system/node/online)")

    def memory(self) -> None:
        mem = self.res.get("memory") or {}
        if not mem:
            return
        if mem.get("kernel"):
            from pyoci.report import warning

            warning(f"{self.field('memory.kernel')}: the kernel memory limit is ignored "
                    "(Linux 5.4 obsoleted it; runc ignores it too)")
        limit = _nonzero(mem, "limit")
        swap = _nonzero(mem, "swap")
        touched = [k for k in ("limit", "reservation", "swap", "kernelTCP") if _nonzero(mem, k) is not None]
        touched += [] if is_unset_swappiness(mem.get("swappiness")) else ["swappiness"]
        touched += [] if mem.get("disableOOMKiller") is None else ["disableOOMKiller"]
        if not touched:
            return
        d = self.dir("memory", f"memory.{touched[0]}")
        limit_file = os.path.join(d, "memory.limit_in_bytes")
        memsw_file = os.path.join(d, "memory.memsw.limit_in_bytes")
        if limit == -1 and swap is None and os.path.exists(memsw_file):
            swap = -1     # unlimited memory: unlimited memory+swap too (runc)
        if limit is not None and limit > 0 and mem.get("checkBeforeUpdate"):
            usage = self.read_int(os.path.join(d, "memory.usage_in_bytes"))
            if limit < usage:
                raise PyociError(f"{self.field('memory.limit')}: {limit} is below the container's current "
                                 f"memory usage ({usage} bytes, memory.usage_in_bytes)",
                                 field=self.field("memory.limit"),
                                 hint="checkBeforeUpdate is set: raise the limit or unset checkBeforeUpdate")
        current = self.read_int(limit_file) if limit is not None and swap is not None else 0
        for what in memory_order(limit, swap, current):
            if what == "swap":
                assert swap is not None
                errno = self.try_write(memsw_file, str(swap))
                if errno:
                    hint = None
                    if errno == EINVAL:
                        hint = "memory.swap (memory+swap) must be at least memory.limit"
                    raise self.fail("memory.swap", memsw_file, str(swap), errno, hint)
            else:
                assert limit is not None
                self._set_limit(d, limit_file, limit, swap is not None)
        tcp = _nonzero(mem, "kernelTCP")
        if tcp is not None:
            # Still a working v1 knob (runc ignores it with kernel memory).
            self.write("memory", "memory.kmem.tcp.limit_in_bytes", str(tcp), "memory.kernelTCP")
        reservation = _nonzero(mem, "reservation")
        if reservation is not None:
            self.write("memory", "memory.soft_limit_in_bytes", str(reservation), "memory.reservation")
        if mem.get("disableOOMKiller") is not None:
            self.write("memory", "memory.oom_control", "1" if mem["disableOOMKiller"] else "0",
                       "memory.disableOOMKiller")
        swappiness: Any = mem.get("swappiness")
        if not is_unset_swappiness(swappiness):
            if int(swappiness) > 100:
                raise PyociError(f"{self.field('memory.swappiness')}: invalid value {swappiness} "
                                 "(valid range is 0-100)", field=self.field("memory.swappiness"))
            self.write("memory", "memory.swappiness", str(int(swappiness)), "memory.swappiness")

    def _set_limit(self, d: str, limit_file: str, limit: int, swap_set: bool) -> None:
        errno = self.try_write(limit_file, str(limit))
        if not errno:
            return
        hint = None
        if errno == EBUSY:
            # The kernel could not reclaim enough to fit under the new limit.
            try:
                usage = self.read_int(os.path.join(d, "memory.usage_in_bytes"))
                peak = self.read_int(os.path.join(d, "memory.max_usage_in_bytes"))
                hint = f"current usage {usage} bytes, peak {peak}: the limit must stay above the usage"
            except (OSError, ValueError):
                pass
        elif errno == EINVAL and not swap_set:
            try:
                memsw = self.read_int(os.path.join(d, "memory.memsw.limit_in_bytes"))
                hint = (f"memory.memsw.limit_in_bytes is {memsw}: the limit may not exceed it; "
                        "set memory.swap as well")
            except (OSError, ValueError):
                pass
        raise self.fail("memory.limit", limit_file, str(limit), errno, hint)

    def cpu(self) -> None:
        cpu = self.res.get("cpu") or {}
        keys = [k for k in ("shares", "quota", "period", "burst", "idle", "realtimeRuntime",
                            "realtimePeriod") if cpu.get(k) is not None]
        if not keys:
            return
        d = self.dir("cpu", f"cpu.{keys[0]}")
        shares = _nonzero(cpu, "shares")
        if shares is not None:
            self.write("cpu", "cpu.shares", str(shares), "cpu.shares",
                       "shares must be 2-262144, and cannot be set while cpu.idle is 1")
            got = self.read_int(os.path.join(d, "cpu.shares"))
            if got != shares:
                edge = "maximum" if shares > got else "minimum"
                raise PyociError(f"{self.field('cpu.shares')}: the {edge} allowed cpu shares is {got}",
                                 field=self.field("cpu.shares"))
        quota = _nonzero(cpu, "quota")
        # The kernel checks quota/period (and burst) against the parent's
        # bandwidth at each write: a refused period or burst is retried
        # once the quota is in place (runc's order).
        retry: list[tuple[str, str, str]] = []
        period = _nonzero(cpu, "period")
        if period is not None:
            path = os.path.join(d, "cpu.cfs_period_us")
            errno = self.try_write(path, str(period))
            if errno == EINVAL and quota is not None:
                retry.append(("cpu.period", path, str(period)))
            elif errno:
                raise self.fail("cpu.period", path, str(period), errno,
                                "the period must be 1000-1000000 us" if errno == EINVAL else None)
        if cpu.get("burst") is not None:
            path = os.path.join(d, "cpu.cfs_burst_us")
            value = str(int(cpu["burst"]))
            errno = self.try_write(path, value)
            if errno == EINVAL and quota is not None:
                retry.append(("cpu.burst", path, value))
            elif errno:
                raise self.fail("cpu.burst", path, value, errno,
                                "the burst may not exceed the quota" if errno == EINVAL else None)
        if quota is not None:
            self.write("cpu", "cpu.cfs_quota_us", str(quota), "cpu.quota",
                       "the quota must be at least 1000 us, or -1, and fit the parent's bandwidth")
            for field, path, value in retry:
                errno = self.try_write(path, value)
                if errno:
                    raise self.fail(field, path, value, errno)
        if cpu.get("idle") is not None:
            self.write("cpu", "cpu.idle", str(int(cpu["idle"])), "cpu.idle", "cpu.idle takes 0 or 1")
        self._rt(d, cpu)

    def _rt(self, d: str, cpu: dict[str, Any]) -> None:
        runtime = _nonzero(cpu, "realtimeRuntime")
        period = _nonzero(cpu, "realtimePeriod")
        hint = ("the runtime must fit in what the parent cgroups grant (their cpu.rt_runtime_us "
                "is 0 unless set)")
        retry = None
        if period is not None:
            path = os.path.join(d, "cpu.rt_period_us")
            errno = self.try_write(path, str(period))
            if errno == EINVAL and runtime is not None:
                retry = path
            elif errno:
                raise self.fail("cpu.realtimePeriod", path, str(period), errno, hint)
        if runtime is not None:
            self.write("cpu", "cpu.rt_runtime_us", str(runtime), "cpu.realtimeRuntime", hint)
            if retry is not None:
                errno = self.try_write(retry, str(period))
                if errno:
                    raise self.fail("cpu.realtimePeriod", retry, str(period), errno, hint)

    def pids(self) -> None:
        # runc 1.1: 0 is "not set" (a new cgroup's pids.max is already max),
        # below 0 is "max".
        limit = _nonzero(self.res.get("pids") or {}, "limit")
        if limit is not None:
            self.write("pids", "pids.max", "max" if limit < 0 else str(limit), "pids.limit")

    def blkio(self) -> None:
        bio = self.res.get("blockIO") or {}
        if not any(v not in (None, []) for v in bio.values()):
            return
        first = next(k for k, v in bio.items() if v not in (None, []))
        d = self.dir("blkio", f"blockIO.{first}")
        # CFQ's blkio.weight is gone since Linux 5.0; BFQ offers blkio.bfq.weight.
        if os.path.exists(os.path.join(d, "blkio.weight")):
            weight_file, weight_dev_file = "blkio.weight", "blkio.weight_device"
        else:
            weight_file, weight_dev_file = "blkio.bfq.weight", "blkio.bfq.weight_device"
        weight = _nonzero(bio, "weight")
        if weight is not None:
            self.write("blkio", weight_file, str(weight), "blockIO.weight", "the weight must be 1-1000")
        leaf = _nonzero(bio, "leafWeight")
        if leaf is not None:
            self.write("blkio", "blkio.leaf_weight", str(leaf), "blockIO.leafWeight")
        for i, wd in enumerate(bio.get("weightDevice") or []):
            if wd.get("weight"):
                self.write("blkio", weight_dev_file, blkio_device_line(wd, "weight"),
                           f"blockIO.weightDevice[{i}].weight",
                           "the device must exist and use the BFQ scheduler; the weight must be 1-1000")
            if wd.get("leafWeight"):
                self.write("blkio", "blkio.leaf_weight_device", blkio_device_line(wd, "leafWeight"),
                           f"blockIO.weightDevice[{i}].leafWeight")
        for key, fname in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                           ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                           ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                           ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
            for i, td in enumerate(bio.get(key) or []):
                self.write("blkio", fname, blkio_device_line(td, "rate"), f"blockIO.{key}[{i}]",
                           "the device must be a whole block device (a disk, not a partition) "
                           "that exists on this host")

    def hugetlb(self) -> None:
        limits = self.res.get("hugepageLimits") or []
        for i, hp in enumerate(limits):
            size = str(hp.get("pageSize", ""))
            field = f"hugepageLimits[{i}]"
            if not size or "/" in size or size.startswith("."):
                raise PyociError(f"{self.field(field)}.pageSize: invalid page size {size!r}",
                                 field=self.field(field))
            d = self.dir("hugetlb", field)
            value = str(int(hp.get("limit", 0)))
            path = os.path.join(d, f"hugetlb.{size}.limit_in_bytes")
            errno = self.try_write(path, value)
            if errno == ENOENT:
                raise PyociError(f"{self.field(field)}: {path} does not exist", field=self.field(field),
                                 path=path, hint=f"this host has no {size} huge pages "
                                                 f"(sizes: {', '.join(huge_page_sizes()) or 'none'})")
            if errno:
                raise self.fail(field, path, value, errno)
            # Reservations too where the kernel has them (Linux 5.7+), as runc 1.2 does.
            rsvd = os.path.join(d, f"hugetlb.{size}.rsvd.limit_in_bytes")
            errno = self.try_write(rsvd, value)
            if errno and errno != ENOENT:
                raise self.fail(field, rsvd, value, errno)

    def network(self) -> None:
        net = self.res.get("network") or {}
        if net.get("classID") is not None:
            self.write("net_cls", "net_cls.classid", str(int(net["classID"])), "network.classID")
        for i, prio in enumerate(net.get("priorities") or []):
            self.write("net_prio", "net_prio.ifpriomap", f"{prio['name']} {int(prio['priority'])}",
                       f"network.priorities[{i}]",
                       "the interface must exist in pyoci's network namespace (the host's)")

    def rdma(self) -> None:
        for device, limits in (self.res.get("rdma") or {}).items():
            self.write("rdma", "rdma.max", rdma_line(device, limits or {}), f"rdma.{device}",
                       "the device must be an RDMA device of this host (see /sys/class/infiniband)")

    def unified(self) -> None:
        """`unified` on a hybrid host goes to the container's cgroup2
        directory, for the keys whose file exists there (the cgroup2 mount
        of a hybrid host usually has no controllers: cgroup.* files only).
        runc refuses `unified` on any host that is not cgroup2-only."""
        unified = self.res.get("unified") or {}
        if not unified:
            return
        if self.lay.unified is None or "" not in self.dirs:
            raise PyociError(f"{self.field('unified')}: cgroup v2 settings, but this host has no cgroup2 "
                             "hierarchy (cgroup v1 only)", field=self.field("unified"),
                             hint="drop linux.resources.unified on cgroup v1")
        for key, value in unified.items():
            field = f"unified[{key!r}]"
            if not key or "/" in key or key in (".", ".."):
                raise PyociError(f"{self.field(field)}: not a cgroup file name", field=self.field(field))
            path = os.path.join(self.dirs[""], key)
            errno = self.try_write(path, str(value))
            if errno == ENOENT:
                raise PyociError(f"{self.field(field)}: {path} does not exist", field=self.field(field),
                                 path=path,
                                 hint=f"the cgroup2 hierarchy of this hybrid host has no {key.split('.')[0]} "
                                      "controller; use the v1 fields of linux.resources")
            if errno:
                raise self.fail(field, path, str(value), errno)


def _v2_controllers(lay: Layout) -> list[str]:
    if not lay.unified:
        return []
    try:
        with open(os.path.join(lay.unified, "cgroup.controllers")) as f:
            return f.read().split()
    except OSError:
        return []


def huge_page_sizes() -> list[str]:
    """The page sizes as hugetlb files name them ("2MB", "1GB"), from
    /sys/kernel/mm/hugepages/hugepages-<N>kB."""
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return []
    sizes = []
    for n in sorted(names, key=lambda s: int("".join(c for c in s if c.isdigit()) or 0)):
        if n.startswith("hugepages-") and n.endswith("kB"):
            sizes.append(page_size_name(int(n[len("hugepages-"):-2]) * 1024))
    return sizes


def page_size_name(size: int) -> str:
    """4096 -> "4KB", 2097152 -> "2MB", 1073741824 -> "1GB" (the kernel's names)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or size % 1024:
            return f"{size}{unit}"
        size //= 1024
    return f"{size}PB"


# -- writing linux.resources (v1 and hybrid hosts, or a host with no cgroups) --------------


def apply(resources: dict[str, Any], paths: dict[str, str], lay: Layout,
          nodes: list[dict[str, Any]] | None = None, *, prefix: str = "$.linux.resources",
          update: bool = False) -> None:
    """Write linux.resources to the container's cgroups; a field the host
    cannot apply is an error naming the field and the missing file."""
    if not resources:
        return
    check_supported(resources)
    dirs = controller_dirs(paths, lay)
    if lay.v1:
        Writer(resources, dirs, lay, prefix, update).apply()
    else:
        _refuse_unmounted(resources, prefix)
    if not update:
        _devices(resources.get("devices"), dirs, nodes)


def _refuse_unmounted(resources: dict[str, Any], prefix: str) -> None:
    """No cgroup filesystem at all (neither v1 nor cgroup2 mounted): a limit
    cannot be applied; device rules alone are left to the device nodes'
    own permissions, as on a host without a devices controller."""
    for section, value in resources.items():
        if section == "devices" or value in (None, {}, []):
            continue
        if isinstance(value, dict) and FIELDS.get(section):
            keys = [k for k, v in value.items() if v is not None and (section, k) not in IGNORED]
            if not keys:
                continue
            field = f"{prefix}.{section}.{keys[0]}"
        else:
            field = f"{prefix}.{section}"
        raise PyociError(f"{field}: no cgroup filesystem is mounted on this host, so no limit can be "
                         "applied", field=field,
                         hint="mount cgroup2 (mount -t cgroup2 none /sys/fs/cgroup), or drop the limits")


def _devices(rules: list[dict[str, Any]] | None, dirs: dict[str, str],
             nodes: list[dict[str, Any]] | None) -> None:
    if not rules or "devices" not in dirs:
        return
    for i, rule in enumerate(rules):
        kind = rule.get("type", "a")
        major = "*" if rule.get("major") is None else str(rule["major"])
        minor = "*" if rule.get("minor") is None else str(rule["minor"])
        line = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.get('access', 'rwm')}"
        f = "devices.allow" if rule.get("allow") else "devices.deny"
        write_value(os.path.join(dirs["devices"], f), line, f"$.linux.resources.devices[{i}]")
    allow = os.path.join(dirs["devices"], "devices.allow")
    for line in DEFAULT_ALLOWED:
        write_value(allow, line)
    # linux.devices nodes must be creatable; access stays as the rules say.
    for d in nodes or []:
        if d.get("type") == "p":
            continue        # a FIFO is no device: the devices cgroup does not govern it
        kind = "c" if d.get("type") == "u" else d.get("type", "c")
        write_value(allow, f"{kind} {d.get('major', 0)}:{d.get('minor', 0)} m")


def freeze(path: str, frozen: bool) -> None:
    """Write a v1 freezer.state and wait until it reads back so."""
    import time

    write_value(path, "FROZEN" if frozen else "THAWED")
    want = "FROZEN" if frozen else "THAWED"
    for _ in range(500):
        with open(path) as f:
            if f.read().strip() == want:
                return
        time.sleep(0.002)
    raise PyociError(f"{path} did not become {want}")
