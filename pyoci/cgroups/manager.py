"""One interface to the container's cgroups, whatever the host's layout.

:func:`for_layout` picks the implementation, as runc's and crun's cgroup
managers do:

* :class:`V1Manager`: one hierarchy per controller (pyoci.cgroups.v1); also
  a host with no cgroup filesystem at all, where any limit is refused;
* :class:`V2Manager`: the unified hierarchy (pyoci.cgroups.v2; device rules
  as an eBPF program, pyoci.cgroups.bpfdev), with rootless delegation;
* :class:`HybridManager`: v1 controllers plus a cgroup2 mount (systemd's
  "hybrid" layout).  The v1 controllers get every field; without a v1
  devices controller the device rules go on the cgroup2 directory as an
  eBPF program (the kernel enforces both); with one, v1 alone, as runc.

What every layout shares (the container's paths, making and placing,
the frozen check, signalling and removing only what pyoci created) lives in
pyoci.cgroups.common; the methods here are the layout-specific steps over
it.  The module-level functions below are the entry points lifecycle,
validate and doctor call; each builds the manager for the layout it is
given (a layout is read fresh from mountinfo by every command).
"""

from __future__ import annotations

from pyoci.cgroups import common
from pyoci.cgroups.common import (
    Layout,
    attach,
    check_not_frozen,
    container_paths,
    destroy,
    freezer_file,
    is_v2,
    layout,
    missing_dirs,
    mount_binds,
    own_cgroups,
    owned,
    pids,
    prepare,
    remove,
    signal_all,
    thaw,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from typing import Any

__all__ = [
    "HybridManager", "Layout", "Manager", "V1Manager", "V2Manager", "apply_resources", "attach",
    "check_not_frozen", "check_resources", "container_paths", "delegated", "delegated_paths", "destroy",
    "for_layout", "freeze", "freezer_file", "is_v2", "layout", "missing_dirs", "mount_binds",
    "own_cgroups", "owned", "pids", "prepare", "remove", "signal_all", "thaw",
]


class Manager:
    """The container's cgroups on one layout.  ``paths`` maps a controller
    (the first of a co-mounted v1 hierarchy) or "" (cgroup2) to the
    container's directory; ``created`` lists the directories pyoci made,
    the only ones ever signalled, frozen or removed."""

    kind = "none"

    def __init__(self, lay: Layout) -> None:
        self.lay = lay

    # -- before anything exists
    def check(self, resources: dict[str, Any]) -> None:
        """Refuse what this layout cannot apply (create, before any change)."""
        common.check_supported(resources)

    def delegated(self, paths: dict[str, str]) -> bool:
        """An unprivileged caller may make and use these paths (v2 only)."""
        return False

    # -- make, place, limit
    def make(self, paths: dict[str, str], required: bool, created: list[str],
             configure: Callable[[], None] | None = None) -> None:
        prepare(paths, required, created, configure)

    def place(self, pid: int, paths: dict[str, str], required: bool, done: Collection[str] = ()) -> None:
        attach(pid, paths, required, done)

    def apply(self, resources: dict[str, Any], paths: dict[str, str],
              nodes: list[dict[str, Any]] | None = None, rootless: bool = False, *,
              prefix: str = "$.linux.resources", update: bool = False) -> None:
        if not resources:
            return  # what v1.apply does then, without importing it (create's common case)
        from pyoci.cgroups import v1

        v1.apply(resources, paths, self.lay, nodes, prefix=prefix, update=update)

    def update(self, resources: dict[str, Any], paths: dict[str, str], rootless: bool = False, *,
               prefix: str = "$.linux.resources") -> None:
        """`pyoci update`: the limits again (device rules stay as create set them on v1)."""
        self.apply(resources, paths, None, rootless, prefix=prefix, update=True)

    # -- a running container
    def freeze(self, path: str, frozen: bool) -> None:
        freeze(path, frozen)

    def stats(self, paths: dict[str, str]) -> dict[str, Any]:
        from pyoci.cgroups import stats

        return stats.collect(paths)

    def kill(self, paths: dict[str, str], sig: int, *, created: Collection[str]) -> list[int]:
        return signal_all(paths, sig, created=created)

    def destroy(self, paths: dict[str, str], created: list[str], kill: bool, timeout: float = 5.0) -> None:
        destroy(paths, created, kill, timeout)


class V1Manager(Manager):
    kind = "v1"


class HybridManager(V1Manager):
    kind = "hybrid"

    def apply(self, resources: dict[str, Any], paths: dict[str, str],
              nodes: list[dict[str, Any]] | None = None, rootless: bool = False, *,
              prefix: str = "$.linux.resources", update: bool = False) -> None:
        super().apply(resources, paths, nodes, rootless, prefix=prefix, update=update)
        if resources.get("devices") and "devices" not in paths and paths.get("") and not rootless:
            from pyoci.cgroups import bpfdev

            bpfdev.apply(paths[""], resources["devices"], nodes)


class V2Manager(Manager):
    kind = "v2"

    def check(self, resources: dict[str, Any]) -> None:
        from pyoci.cgroups import v2

        v2.check(resources)

    def delegated(self, paths: dict[str, str]) -> bool:
        from pyoci.cgroups import v2

        return v2.delegated(self.lay, paths)

    def apply(self, resources: dict[str, Any], paths: dict[str, str],
              nodes: list[dict[str, Any]] | None = None, rootless: bool = False, *,
              prefix: str = "$.linux.resources", update: bool = False) -> None:
        from pyoci.cgroups import v2

        if "" in paths and self.lay.unified:
            v2.apply(resources, paths[""], self.lay.unified, nodes, rootless=rootless)


def for_layout(lay: Layout) -> Manager:
    """The manager for this host's layout."""
    if is_v2(lay):
        return V2Manager(lay)
    if lay.unified is not None and lay.v1:
        return HybridManager(lay)
    return V1Manager(lay)


# -- the entry points ------------------------------------------------------------------------


def check_resources(resources: dict[str, Any], lay: Layout) -> None:
    """Before anything exists: refuse what this layout cannot apply."""
    for_layout(lay).check(resources)


def apply_resources(resources: dict[str, Any], paths: dict[str, str], lay: Layout,
                    nodes: list[dict[str, Any]] | None = None, rootless: bool = False, *,
                    prefix: str = "$.linux.resources", update: bool = False) -> None:
    for_layout(lay).apply(resources, paths, nodes, rootless, prefix=prefix, update=update)


def delegated(lay: Layout, paths: dict[str, str]) -> bool:
    """An unprivileged caller with a writable (delegated) cgroup v2 subtree."""
    return for_layout(lay).delegated(paths)


def delegated_paths(lay: Layout, cgroups_path: str | None, cid: str,
                    paths: dict[str, str]) -> dict[str, str] | None:
    """For an unprivileged caller on a v2 host: the container's cgroup in the
    subtree delegated to it, or None.  ``paths`` (beside the caller's own
    cgroup, as for root) when that is writable; else, for a relative path,
    the same path below the caller's own cgroup when only that is writable
    (placement and freezing work there; controllers cannot be enabled below
    a cgroup that holds processes, so limits fail naming the reason)."""
    mgr = for_layout(lay)
    if mgr.delegated(paths):
        return paths
    rel = cgroups_path or cid
    if not lay.unified or mgr.kind != "v2" or rel.startswith("/") or ":" in rel:
        return None
    below = {"": lay.unified + common._join(own_cgroups().get("", "/"), rel)}
    return below if mgr.delegated(below) else None


def freeze(path: str, frozen: bool) -> None:
    """Freeze or thaw through the file freezer_file() named: a v1
    freezer.state, or a cgroup2 cgroup.freeze (v2, or a hybrid host
    without a v1 freezer)."""
    if path.endswith("freezer.state"):
        from pyoci.cgroups import v1

        v1.freeze(path, frozen)
    else:
        from pyoci.cgroups import v2

        v2.freeze(path, frozen)
