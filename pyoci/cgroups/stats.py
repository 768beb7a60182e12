"""Container statistics from its cgroups, in runc's `events` JSON shape.

The shape is runc's ``types.Stats`` (runc/types/events.go) as Go encodes it:
fields in declaration order, ``omitempty`` fields left out when zero or
empty (a struct field is never left out), ``network_interfaces`` null.  v1
files are read as runc's fs driver reads them (cpuacct, cpu.stat, cpuset,
memory incl. memsw/kmem, pids, blkio, hugetlb); a container with a cgroup2
directory alone (a v2 host) is read as runc's fs2 driver does (pids from
cgroup.procs where the pids controller is missing).  Missing controllers
give empty sections.  Which of the two is decided by the paths create
recorded, not by the layout `events` happens to see.

Also here: the OOM notifier `events` waits on (v1: an eventfd registered on
memory.oom_control through cgroup.event_control; v2: poll(2) on
memory.events and its oom_kill counter, see CounterWatch).  Imported by
`events` only.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_UINT64 = 2 ** 64 - 1
NS_PER_TICK = 10_000_000        # cpuacct.stat counts USER_HZ (100) ticks


# -- reading files ---------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _uint(path: str) -> int | None:
    """A one-number file; "max" is MaxUint64 (as runc's GetCgroupParamUint)."""
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return MAX_UINT64
    try:
        return max(int(text), 0)
    except ValueError:
        return None


def _keyed(path: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, memory.events)."""
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def parse_list(text: str) -> list[int]:
    """The kernel's list format ("0-2,5") -> [0, 1, 2, 5]."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def parse_blkio(text: str) -> list[dict[str, Any]]:
    """blkio.* lines ``8:0 Read 1282048`` or ``8:0 6792`` -> runc's BlkioEntry
    (each field omitted when zero, as Go's omitempty does)."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            continue        # "Total N" and blank lines
        op = fields[2] if len(fields) == 4 else ""
        try:
            major, minor, value = int(fields[0]), int(fields[1]), int(fields[-1])
        except ValueError:
            continue
        entry: dict[str, Any] = {}
        for key, v in (("major", major), ("minor", minor), ("op", op), ("value", value)):
            if v:
                entry[key] = v
        out.append(entry)
    return out


def _omit_zero(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Drop the omitempty keys whose value is zero or empty."""
    for k in keys:
        if not d.get(k):
            d.pop(k, None)
    return d


# -- cgroup v1 ---------------------------------------------------------------


def _v1_cpu(dirs: dict[str, str]) -> dict[str, Any]:
    usage: dict[str, Any] = {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [],
                             "kernel": 0, "user": 0}
    acct = dirs.get("cpuacct")
    if acct and os.path.isdir(acct):
        usage["total"] = _uint(os.path.join(acct, "cpuacct.usage")) or 0
        usage["percpu"] = [int(x) for x in (_read(os.path.join(acct, "cpuacct.usage_percpu")) or "").split()]
        for line in (_read(os.path.join(acct, "cpuacct.usage_all")) or "").splitlines()[1:]:
            cols = line.split()
            if len(cols) == 3:
                usage["percpu_user"].append(int(cols[1]))
                usage["percpu_kernel"].append(int(cols[2]))
        st = _keyed(os.path.join(acct, "cpuacct.stat"))
        usage["user"] = st.get("user", 0) * NS_PER_TICK
        usage["kernel"] = st.get("system", 0) * NS_PER_TICK
    throttling: dict[str, Any] = {}
    cpu = dirs.get("cpu")
    if cpu:
        st = _keyed(os.path.join(cpu, "cpu.stat"))
        throttling = {"periods": st.get("nr_periods", 0), "throttledPeriods": st.get("nr_throttled", 0),
                      "throttledTime": st.get("throttled_time", 0)}
    return {"usage": _omit_zero(usage, "total", "percpu", "percpu_kernel", "percpu_user"),
            "throttling": _omit_zero(throttling, "periods", "throttledPeriods", "throttledTime")}


def _v1_cpuset(dirs: dict[str, str]) -> dict[str, Any]:
    d = dirs.get("cpuset")
    out: dict[str, Any] = {"cpus": [], "cpu_exclusive": 0, "mems": [], "mem_hardwall": 0,
                           "mem_exclusive": 0, "memory_migrate": 0, "memory_spread_page": 0,
                           "memory_spread_slab": 0, "memory_pressure": 0, "sched_load_balance": 0,
                           "sched_relax_domain_level": 0}
    if d and os.path.isdir(d):
        out["cpus"] = parse_list(_read(os.path.join(d, "cpuset.cpus")) or "")
        out["mems"] = parse_list(_read(os.path.join(d, "cpuset.mems")) or "")
        for key in list(out):
            if key in ("cpus", "mems"):
                continue
            text = _read(os.path.join(d, f"cpuset.{key}"))
            if text is not None:
                try:
                    out[key] = int(text.strip())
                except ValueError:
                    pass
    return _omit_zero(out, "cpus", "mems")


def _memory_entry(d: str, prefix: str) -> dict[str, Any]:
    """runc's MemoryEntry from memory[.memsw|.kmem|.kmem.tcp].* files."""
    usage = _uint(os.path.join(d, f"{prefix}.usage_in_bytes"))
    if usage is None:
        return {"limit": 0, "failcnt": 0}      # swap or kmem accounting off
    entry = {"limit": _uint(os.path.join(d, f"{prefix}.limit_in_bytes")) or 0, "usage": usage,
             "max": _uint(os.path.join(d, f"{prefix}.max_usage_in_bytes")) or 0,
             "failcnt": _uint(os.path.join(d, f"{prefix}.failcnt")) or 0}
    return _omit_zero(entry, "usage", "max")


def _v1_memory(dirs: dict[str, str]) -> dict[str, Any]:
    d = dirs.get("memory")
    empty = {"limit": 0, "failcnt": 0}
    if not d or not os.path.isdir(d):
        return {"usage": dict(empty), "swap": dict(empty), "kernel": dict(empty), "kernelTCP": dict(empty)}
    raw = dict(sorted(_keyed(os.path.join(d, "memory.stat")).items()))
    out = {"cache": raw.get("cache", 0), "usage": _memory_entry(d, "memory"),
           "swap": _memory_entry(d, "memory.memsw"), "kernel": _memory_entry(d, "memory.kmem"),
           "kernelTCP": _memory_entry(d, "memory.kmem.tcp"), "raw": raw}
    return _omit_zero(out, "cache", "raw")


def _pids(d: str | None, current_file: str) -> dict[str, Any]:
    if not d:
        return {}
    limit = _uint(os.path.join(d, "pids.max")) or 0
    out = {"current": _uint(os.path.join(d, current_file)) or 0,
           "limit": 0 if limit == MAX_UINT64 else limit}
    return _omit_zero(out, "current", "limit")


def _v2_pids(d: str) -> dict[str, Any]:
    """pids.current and pids.max; without the pids controller (not enabled
    for the cgroup, or bound to a v1 hierarchy), as runc: the processes
    counted from cgroup.procs -- of the cgroup and its sub-cgroups, as
    pids.current counts them -- and no limit."""
    if os.path.exists(os.path.join(d, "pids.current")):
        return _pids(d, "pids.current")
    if not os.path.isdir(d):
        return {}
    from pyoci.cgroups.common import tree_pids

    return _omit_zero({"current": len(tree_pids(d)), "limit": 0}, "current", "limit")


# runc's order: the first group whose first file has entries wins.
_BLKIO_GROUPS: list[list[tuple[str, str]]] = [
    [("blkio.bfq.sectors_recursive", "sectorsRecursive"),
     ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.bfq.time_recursive", "ioTimeRecursive"),
     ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.sectors_recursive", "sectorsRecursive"),
     ("blkio.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.time_recursive", "ioTimeRecursive"),
     ("blkio.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.throttle.io_serviced", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive")],
]
_BLKIO_KEYS = ["ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive", "ioServiceTimeRecursive",
               "ioWaitTimeRecursive", "ioMergedRecursive", "ioTimeRecursive", "sectorsRecursive"]


def _v1_blkio(dirs: dict[str, str]) -> dict[str, Any]:
    d = dirs.get("blkio")
    found: dict[str, Any] = {}
    if d and os.path.isdir(d):
        for group in _BLKIO_GROUPS:
            first = parse_blkio(_read(os.path.join(d, group[0][0])) or "")
            if not first:
                continue
            found[group[0][1]] = first
            for fname, key in group[1:]:
                found[key] = parse_blkio(_read(os.path.join(d, fname)) or "")
            break
    return {k: found[k] for k in _BLKIO_KEYS if found.get(k)}


def _hugetlb(d: str | None, v2: bool) -> dict[str, Any]:
    from pyoci.cgroups.v1 import huge_page_sizes

    out: dict[str, Any] = {}
    if not d or not os.path.isdir(d):
        return out
    for size in huge_page_sizes():
        p = os.path.join(d, f"hugetlb.{size}")
        if v2:
            usage = _uint(p + ".current")
            if usage is None:
                continue
            entry = {"usage": usage, "max": 0, "failcnt": _keyed(p + ".events").get("max", 0)}
        else:
            usage = _uint(p + ".usage_in_bytes")
            if usage is None:
                continue
            entry = {"usage": usage, "max": _uint(p + ".max_usage_in_bytes") or 0,
                     "failcnt": _uint(p + ".failcnt") or 0}
        out[size] = _omit_zero(entry, "usage", "max")
    return out


def v1_stats(dirs: dict[str, str]) -> dict[str, Any]:
    """runc's Stats from v1 hierarchies (``dirs``: controller -> directory)."""
    return {"cpu": _v1_cpu(dirs), "cpuset": _v1_cpuset(dirs), "memory": _v1_memory(dirs),
            "pids": _pids(dirs.get("pids") if dirs.get("pids") and os.path.isdir(dirs["pids"]) else None,
                          "pids.current"),
            "blkio": _v1_blkio(dirs), "hugetlb": _hugetlb(dirs.get("hugetlb"), False),
            "intel_rdt": {}, "network_interfaces": None}


# -- cgroup v2 (a cgroup2-only host) ---------------------------------------------------


def v2_stats(d: str) -> dict[str, Any]:
    """runc's Stats from a cgroup2 directory (as runc's fs2 driver reads it)."""
    st = _keyed(os.path.join(d, "cpu.stat"))
    usage = {"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
             "user": st.get("user_usec", 0) * 1000}
    throttling = {"periods": st.get("nr_periods", 0), "throttledPeriods": st.get("nr_throttled", 0),
                  "throttledTime": st.get("throttled_usec", 0) * 1000}
    cpu = {"usage": _omit_zero(usage, "total"),
           "throttling": _omit_zero(throttling, "periods", "throttledPeriods", "throttledTime")}
    cpuset: dict[str, Any] = {"cpus": parse_list(_read(os.path.join(d, "cpuset.cpus.effective")) or ""),
                              "cpu_exclusive": 0,
                              "mems": parse_list(_read(os.path.join(d, "cpuset.mems.effective")) or ""),
                              "mem_hardwall": 0, "mem_exclusive": 0, "memory_migrate": 0,
                              "memory_spread_page": 0, "memory_spread_slab": 0, "memory_pressure": 0,
                              "sched_load_balance": 0, "sched_relax_domain_level": 0}
    memory: dict[str, Any] = {"usage": {"limit": 0, "failcnt": 0}, "swap": {"limit": 0, "failcnt": 0},
                              "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0}}
    current = _uint(os.path.join(d, "memory.current"))
    if current is not None:
        raw = dict(sorted(_keyed(os.path.join(d, "memory.stat")).items()))
        events = _keyed(os.path.join(d, "memory.events"))
        memory["cache"] = raw.get("file", 0)
        memory["usage"] = _omit_zero({"limit": _uint(os.path.join(d, "memory.max")) or 0, "usage": current,
                                      "max": _uint(os.path.join(d, "memory.peak")) or 0,
                                      "failcnt": events.get("max", 0)}, "usage", "max")
        swap = _uint(os.path.join(d, "memory.swap.current"))
        if swap is not None:
            swap_events = _keyed(os.path.join(d, "memory.swap.events"))
            swap_max = _uint(os.path.join(d, "memory.swap.max")) or 0
            mem_max = memory["usage"]["limit"]
            limit = MAX_UINT64 if MAX_UINT64 in (swap_max, mem_max) else swap_max + mem_max
            # v1 reports memory + swap; v2's files count swap alone (runc adds them up)
            memory["swap"] = _omit_zero({"limit": limit, "usage": swap + current,
                                         "max": _uint(os.path.join(d, "memory.swap.peak")) or 0,
                                         "failcnt": swap_events.get("max", 0)}, "usage", "max")
        memory["raw"] = raw
        memory = {k: memory[k] for k in ("cache", "usage", "swap", "kernel", "kernelTCP", "raw")}
        _omit_zero(memory, "cache", "raw")
    return {"cpu": cpu, "cpuset": _omit_zero(cpuset, "cpus", "mems"), "memory": memory,
            "pids": _v2_pids(d), "blkio": _v2_io(d), "hugetlb": _hugetlb(d, True), "intel_rdt": {},
            "network_interfaces": None}


def _v2_io(d: str) -> dict[str, Any]:
    """io.stat ``8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...`` -> runc's blkio lists."""
    nbytes: list[dict[str, Any]] = []
    nios: list[dict[str, Any]] = []
    for line in (_read(os.path.join(d, "io.stat")) or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for target, read_key, write_key in ((nbytes, "rbytes", "wbytes"), (nios, "rios", "wios")):
            for op, key in (("Read", read_key), ("Write", write_key)):
                if key in kv:
                    entry = {"major": int(major), "minor": int(minor), "op": op, "value": int(kv[key])}
                    target.append(_omit_zero(entry, "major", "minor", "value"))
    out: dict[str, Any] = {}
    if nbytes:
        out["ioServiceBytesRecursive"] = nbytes
    if nios:
        out["ioServicedRecursive"] = nios
    return out


def collect(paths: dict[str, str]) -> dict[str, Any]:
    """Stats of a container from its recorded cgroup paths."""
    from pyoci.cgroups.common import controller_dirs, layout

    if not v1_paths(paths):
        return v2_stats(paths.get("", ""))
    return v1_stats(controller_dirs(paths, layout()))


def v1_paths(paths: dict[str, str]) -> bool:
    """Whether the container was placed in v1 controller hierarchies (v1 or
    hybrid host), or has a cgroup2 directory for its controllers (v2; a
    named v1 hierarchy such as name=systemd beside it has none): decided
    from what create recorded, not from the layout `events` sees (another
    mount namespace may differ)."""
    return any(ctrl and not ctrl.startswith("name=") for ctrl in paths)


# -- OOM notification -------------------------------------------------------------------


class CounterWatch:
    """A counter in a cgroup2 "key value" events file (memory.events
    ``oom_kill``, hugetlb.<size>.events ``max``, cgroup.events ...), watched
    with poll(2).

    The kernel marks such a file changed (kernfs_notify) whenever one of
    its counters moves, and poll reports POLLPRI|POLLERR on an open file
    that has not read the file since; reading it through the same file
    descriptor re-arms the notification.  So: open, read once (armed),
    poll, and on a wake-up ``check()`` reads again and says by how much
    the counter grew.  A removed cgroup fails the read (ENODEV), which
    check() reports as gone."""

    __slots__ = ("path", "key", "fd", "count")

    def __init__(self, path: str, key: str) -> None:
        self.path = path
        self.key = key
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.count = self._read() or 0

    def _read(self) -> int | None:
        try:
            os.lseek(self.fd, 0, os.SEEK_SET)
            data = b""
            while True:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return None
        for line in data.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == self.key and parts[1].isdigit():
                return int(parts[1])
        return 0

    @property
    def events_mask(self) -> int:
        import select

        return select.POLLPRI | select.POLLERR

    def check(self) -> tuple[int, bool]:
        """(how much the counter grew, the cgroup is gone) after a wake-up."""
        value = self._read()
        if value is None:
            return 0, True
        new, self.count = value - self.count, value
        return max(new, 0), False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class OomWatch:
    """A file descriptor that becomes readable when the cgroup sees an OOM.

    v1: an eventfd registered for memory.oom_control (the kernel signals it
    on every OOM in the cgroup, and once more when the cgroup is removed);
    v2: memory.events through a CounterWatch on ``oom_kill`` (hierarchical:
    sub-cgroups included), as runc and crun watch it.  ``check()`` after a
    wake-up says how many OOM kills are new, and whether the cgroup is
    gone.  Without a memory controller (fd -1) there is nothing to watch."""

    def __init__(self, paths: dict[str, str]) -> None:
        from pyoci.cgroups.common import controller_dirs, layout

        self.fd = -1
        self.v2 = not v1_paths(paths)
        self._keep = -1
        self._counter: CounterWatch | None = None
        self.dir = ""
        self._kills = 0
        if self.v2:
            self.dir = paths.get("", "")
            try:
                self._counter = CounterWatch(os.path.join(self.dir, "memory.events"), "oom_kill")
            except OSError:
                return          # no memory controller on this cgroup
            self.fd = self._counter.fd
            return
        self.dir = controller_dirs(paths, layout()).get("memory", "")
        if not self.dir:
            return
        control = os.path.join(self.dir, "memory.oom_control")
        try:
            self._keep = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
            self.fd = os.eventfd(0, os.EFD_CLOEXEC)
            from pyoci.linux.proc import write_text

            write_text(os.path.join(self.dir, "cgroup.event_control"), f"{self.fd} {self._keep}")
        except OSError:
            self.close()
            return
        self._kills = _keyed(control).get("oom_kill", 0)

    @property
    def events_mask(self) -> int:
        import select

        return select.POLLPRI | select.POLLERR if self.v2 else select.POLLIN

    def check(self) -> tuple[int, bool]:
        """(new OOM events, the cgroup is gone) after fd became ready."""
        if self._counter is not None:
            return self._counter.check()
        count = int.from_bytes(os.read(self.fd, 8), "little")
        control = os.path.join(self.dir, "memory.oom_control")
        if not os.path.exists(control):
            return 0, True
        # A wake-up is one OOM condition or more (runc reports one event per
        # wake-up); oom_kill (Linux 4.13+) counts the kills: one event each.
        kills = _keyed(control).get("oom_kill", self._kills)
        new_kills, self._kills = kills - self._kills, kills
        return max(1 if count else 0, new_kills), False

    def close(self) -> None:
        if self._counter is not None:
            self._counter.close()
            self._counter = None
            self.fd = -1
        for fd in (self.fd, self._keep):
            if fd >= 0:
                os.close(fd)
        self.fd = self._keep = -1
