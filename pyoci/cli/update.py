"""pyoci update: change a running container's resource limits.

The flags are runc's (names, value syntax, and `--resources FILE|-` for a
linux.resources JSON document); only what is given changes."""

from __future__ import annotations

from pyoci.cli._common import one_id
from pyoci.cli.flags import Flag
from pyoci.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Change the resource limits of a created, running or paused container's
cgroups; only the fields given change, checked and converted as at create.
Either --resources (a runtime-spec linux.resources JSON file, - for standard
input) or the limit flags, not both. Sizes take runc's syntax: a number with
an optional binary suffix k, m, g, t, p (64m, 1.5GiB), or -1 for no limit."""
EXAMPLE = "pyoci update --memory 256m --pids-limit 100 web"
USAGE = "[--resources FILE|-] [--memory N] [--cpu-quota N] [--pids-limit N] [...] ID"

# flag -> (value kind, section, key in linux.resources).  Kinds: "uint",
# "int", "size" (a byte count with runc's suffixes: 64m, 1.5g; or -1),
# "str".
FIELDS: dict[str, tuple[str, str, str]] = {
    "blkio-weight": ("uint", "blockIO", "weight"),
    "cpu-period": ("uint", "cpu", "period"),
    "cpu-quota": ("int", "cpu", "quota"),
    "cpu-burst": ("uint", "cpu", "burst"),
    "cpu-share": ("uint", "cpu", "shares"),
    "cpu-rt-period": ("uint", "cpu", "realtimePeriod"),
    "cpu-rt-runtime": ("int", "cpu", "realtimeRuntime"),
    "cpu-idle": ("int", "cpu", "idle"),
    "cpuset-cpus": ("str", "cpu", "cpus"),
    "cpuset-mems": ("str", "cpu", "mems"),
    "memory": ("size", "memory", "limit"),
    "memory-reservation": ("size", "memory", "reservation"),
    "memory-swap": ("size", "memory", "swap"),
    "kernel-memory-tcp": ("size", "memory", "kernelTCP"),
    "pids-limit": ("int", "pids", "limit"),
}
HELP = {
    "blkio-weight": "per-cgroup block I/O weight, 10 to 1000",
    "cpu-period": "CPU CFS period (us); 0: leave as is",
    "cpu-quota": "CPU CFS quota (us) per period; -1: none",
    "cpu-burst": "CPU CFS burst (us)",
    "cpu-share": "CPU shares (relative weight)",
    "cpu-rt-period": "CPU realtime period (us)",
    "cpu-rt-runtime": "CPU realtime runtime (us) per period",
    "cpu-idle": "1: SCHED_IDLE for the container's cgroup, 0: normal",
    "cpuset-cpus": "CPUs to run on (0-3, 0,1)",
    "cpuset-mems": "memory nodes to use",
    "memory": "memory limit in bytes (suffixes k, m, g, t, p: 64m); -1: none",
    "memory-reservation": "memory soft limit in bytes (suffixes as --memory)",
    "memory-swap": "memory + swap limit in bytes (suffixes as --memory); -1: unlimited swap",
    "kernel-memory-tcp": "kernel TCP buffer limit in bytes (cgroup v1; runc ignores it)",
    "pids-limit": "maximum number of processes; -1: none (0: leave as is, as runc)",
}
# runc accepts --kernel-memory and does nothing with it (Linux 5.4 obsoleted
# the limit), and fails the Intel RDT flags when RDT is off (always, for pyoci).
IGNORED = ("kernel-memory",)
RDT = ("l3-cache-schema", "mem-bw-schema")

FLAGS = ([Flag("resources", "str", aliases=("r",),
               help="a linux.resources JSON file, or - for stdin (no other limit flag with it)")]
         + [Flag(name, "str", aliases=("cpu-shares",) if name == "cpu-share" else (), help=HELP[name])
            for name in FIELDS]
         + [Flag(name, "str", help="obsolete: accepted and ignored, as by runc") for name in IGNORED]
         + [Flag(name, "str", help="Intel RDT: not supported by pyoci") for name in RDT])

_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str) -> int:
    """runc's RAMInBytes: a number (decimals allowed) with an optional binary
    suffix k/m/g/t/p, then optional i and b, any case ("64m", "1.5GiB",
    "512 kb"); "-1" is -1.  ValueError otherwise."""
    if text.strip() == "-1":
        return -1
    s = text.strip().lower()
    if s.endswith("b"):
        s = s[:-1]
    if s.endswith("i"):
        s = s[:-1]
    unit = ""
    if s and s[-1] in _BINARY:
        unit, s = s[-1], s[:-1]
    if s.endswith(" "):
        s = s[:-1]
    if not s or not all(c.isdigit() or c == "." for c in s) or not s[0].isdigit() or s.endswith("."):
        raise ValueError(f"invalid size {text!r}")
    return int(float(s) * _BINARY[unit])


def parse_value(kind: str, text: str) -> int | str:
    if kind == "str":
        return text
    if kind == "size":
        return parse_size(text)
    try:
        value = int(text, 10)
    except ValueError:
        what = "an integer" if kind == "int" else "an unsigned integer"
        raise ValueError(f"{text!r} is not {what}") from None
    if kind == "uint" and value < 0:
        raise ValueError(f"{text!r} is not an unsigned integer")
    return value


def resources_from_flags(opts: dict[str, Any]) -> dict[str, Any]:
    """The linux.resources object the limit flags describe (only those given)."""
    out: dict[str, Any] = {}
    for name, (kind, section, key) in FIELDS.items():
        text = opts.get(name)
        if text is None:
            continue
        try:
            value = parse_value(kind, str(text))
        except ValueError as e:
            raise UsageError(f"invalid value for --{name}: {e}") from None
        if kind == "str" and not value:
            continue            # runc: an empty --cpuset-cpus changes nothing
        out.setdefault(section, {})[key] = value
    return out


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.container import update

    cid = one_id(pos, USAGE)
    for name in RDT:
        if opts.get(name):
            raise UsageError(f"--{name}: Intel RDT is not supported by pyoci")
    if any(opts.get(name) for name in IGNORED):
        from pyoci.report import warning

        warning("--kernel-memory is ignored (the kernel memory limit is obsolete since Linux 5.4)")
    resources = resources_from_flags(opts)
    if opts["resources"]:
        if resources:
            given = ", ".join(f"--{n}" for n in FIELDS if opts.get(n) is not None)
            raise UsageError(f"--resources cannot be combined with {given} (runc ignores the flags then): "
                             "put the values in the resources file")
        from pyoci.spec.load import load_resources

        resources = load_resources(str(opts["resources"]))
    update(g.root, cid, resources)
    return 0
