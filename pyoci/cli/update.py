"""pyoci update: change a container's resource limits."""

from __future__ import annotations

from pyoci.cli._common import one_id
from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

USAGE = "[--resources FILE|-] [--memory N] [--pids-limit N] [...] ID"
# flag -> path in linux.resources
FIELDS: dict[str, tuple[str, str]] = {
    "memory": ("memory", "limit"),
    "memory-reservation": ("memory", "reservation"),
    "memory-swap": ("memory", "swap"),
    "cpu-shares": ("cpu", "shares"),
    "cpu-quota": ("cpu", "quota"),
    "cpu-period": ("cpu", "period"),
    "cpuset-cpus": ("cpu", "cpus"),
    "cpuset-mems": ("cpu", "mems"),
    "pids-limit": ("pids", "limit"),
    "blkio-weight": ("blockIO", "weight"),
}
STRING_FIELDS = {"cpuset-cpus", "cpuset-mems"}
FLAGS = [Flag("resources", "str", aliases=("r",), help="a linux.resources JSON file, or - for stdin")] + [
    Flag(name, "str" if name in STRING_FIELDS else "int", help=f"set linux.resources.{a}.{b}")
    for name, (a, b) in FIELDS.items()
]


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci.lifecycle.container import update

    cid = one_id(pos, USAGE)
    resources: dict[str, Any] = {}
    if opts["resources"]:
        from pyoci.spec.load import load_resources

        resources = load_resources(str(opts["resources"]))
    for name, (section, key) in FIELDS.items():
        if opts.get(name) is not None:
            resources.setdefault(section, {})[key] = opts[name]
    update(g.root, cid, resources)
    return 0
