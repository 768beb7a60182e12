"""One interface to the container's cgroups, whatever the host's layout.

The rest of pyoci (lifecycle, spec.validate, linux.doctor) gets one
:class:`Manager` per command and calls its methods; it never imports
pyoci.cgroups.common, v1, v2, bpfdev or stats (tests/unit/test_import_graph.py
checks).  Two ways to get one:

* :func:`for_host`: for this host's layout, read from mountinfo now
  (create, update, validate, doctor);
* :func:`for_paths`: for a container create made, from the cgroup paths it
  recorded (kill, delete, pause, ps, exec, events); the layout is read
  only when a method needs it, so these commands read no mountinfo.

(:func:`for_layout` picks the implementation for a layout, as runc's and
crun's cgroup managers pick theirs.)  The implementations:

* :class:`V1Manager`: one hierarchy per controller (pyoci.cgroups.v1); also
  a host with no cgroup filesystem at all, where any limit is refused;
* :class:`V2Manager`: the unified hierarchy (pyoci.cgroups.v2; device rules
  as an eBPF program, pyoci.cgroups.bpfdev), with rootless delegation;
* :class:`HybridManager`: v1 controllers plus a cgroup2 mount (systemd's
  "hybrid" layout).  The v1 controllers get every field; without a v1
  devices controller the device rules go on the cgroup2 directory as an
  eBPF program (the kernel enforces both); with one, v1 alone, as runc.

The methods take the container's ``paths`` (controller, or "" for
cgroup2, -> directory) and, where processes are signalled, frozen or
removed, ``created`` (the directories pyoci made): only those are ever
touched (see pyoci.cgroups.common.owned).  What every layout shares lives
in pyoci.cgroups.common; the limits, delegation and the freezers in v1 and
v2, imported only by the methods that need them (create without
linux.resources imports neither).
"""

from __future__ import annotations

import os

from pyoci.cgroups import common
from pyoci.cgroups.common import Layout, layout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from typing import Any

    from pyoci.cgroups.stats import OomWatch

__all__ = ["HybridManager", "Layout", "Manager", "V1Manager", "V2Manager", "for_host", "for_layout",
           "for_paths", "layout"]


class Manager:
    """The container's cgroups on one layout.  ``paths`` maps a controller
    (the first of a co-mounted v1 hierarchy) or "" (cgroup2) to the
    container's directory; ``created`` lists the directories pyoci made,
    the only ones ever signalled, frozen or removed."""

    kind = "none"

    def __init__(self, lay: Layout | None = None) -> None:
        self._lay = lay

    @property
    def lay(self) -> Layout:
        """The host's layout (read on first use where the manager was made
        from recorded paths)."""
        if self._lay is None:
            self._lay = layout()
        return self._lay

    # -- where the container's cgroup is, before anything exists
    def container_paths(self, cgroups_path: str | None, cid: str) -> dict[str, str]:
        """The container's directories: ``linux.cgroupsPath`` (absolute, or
        relative to the runtime's own cgroup) or, without one, ``cid``."""
        return common.container_paths(cgroups_path, cid, self.lay)

    def delegated(self, paths: dict[str, str]) -> bool:
        """An unprivileged caller may make and use these paths (v2 only)."""
        return False

    def delegated_paths(self, cgroups_path: str | None, cid: str,
                        paths: dict[str, str]) -> dict[str, str] | None:
        """For an unprivileged caller: the container's cgroup in a subtree
        delegated to it, or None (v2 only)."""
        return None

    def check(self, resources: dict[str, Any]) -> None:
        """Refuse what this layout cannot apply (create, before any change)."""
        common.check_supported(resources)

    def check_not_frozen(self, paths: dict[str, str]) -> None:
        """Refuse a container cgroup (or the nearest ancestor that exists)
        that is frozen already."""
        common.check_not_frozen(paths, self.lay)

    def mount_binds(self, paths: dict[str, str] | None) -> list[tuple[str, str]]:
        """What a `cgroup` mount in the container shows: (name, host
        directory) per hierarchy; the caller's own cgroups for None."""
        return common.mount_binds(self.lay, paths)

    def missing_dirs(self, paths: dict[str, str]) -> list[str]:
        """The directories make() would create: create records them first."""
        return common.missing_dirs(paths)

    # -- make, place, limit
    def make(self, paths: dict[str, str], required: bool, created: list[str],
             configure: Callable[[], None] | None = None) -> None:
        """mkdir the container's cgroups, appending each directory made to
        ``created``, then call ``configure`` (the limits)."""
        common.prepare(paths, required, created, configure)

    def place(self, pid: int, paths: dict[str, str], required: bool, done: Collection[str] = ()) -> None:
        """Move pid into the container's cgroups, but for those in ``done``."""
        common.attach(pid, paths, required, done)

    def apply(self, resources: dict[str, Any], paths: dict[str, str],
              nodes: list[dict[str, Any]] | None = None, rootless: bool = False, *,
              prefix: str = "$.linux.resources", update: bool = False) -> None:
        """Write linux.resources (and the device rules, with ``nodes``)."""
        if not resources:
            return  # what v1.apply does then, without importing it (create's common case)
        from pyoci.cgroups import v1

        v1.apply(resources, paths, self.lay, nodes, prefix=prefix, update=update)

    def update(self, resources: dict[str, Any], paths: dict[str, str], rootless: bool = False, *,
               prefix: str = "$.linux.resources") -> None:
        """`pyoci update`: the limits again (device rules stay as create set them on v1)."""
        self.apply(resources, paths, None, rootless, prefix=prefix, update=True)

    # -- a running container
    def freezer_file(self, paths: dict[str, str], *, created: Collection[str]) -> str | None:
        """The file pause writes (a v1 freezer.state, or a cgroup2
        cgroup.freeze) of a directory pyoci made; None: no freezer."""
        return common.freezer_file(common.owned(paths, created))

    def freeze(self, freezer: str, frozen: bool) -> None:
        """Freeze or thaw through the file freezer_file() named (recorded at
        create) and wait until the kernel says it is done."""
        if freezer.endswith("freezer.state"):
            from pyoci.cgroups import v1

            v1.freeze(freezer, frozen)
        else:
            from pyoci.cgroups import v2

            v2.freeze(freezer, frozen)

    def thaw(self, paths: dict[str, str], *, created: Collection[str]) -> None:
        """Thaw the container's cgroups pyoci made and their sub-cgroups, at
        once (a failed create, before its processes are killed)."""
        common.thaw(common.owned(paths, created))

    def stats(self, paths: dict[str, str]) -> dict[str, Any]:
        """The statistics of `pyoci events`."""
        from pyoci.cgroups import stats

        return stats.collect(paths)

    def watch_oom(self, paths: dict[str, str]) -> OomWatch:
        """A file descriptor that becomes readable on an OOM (`events`)."""
        from pyoci.cgroups import stats

        return stats.OomWatch(paths)

    def pids(self, paths: dict[str, str], *, created: Collection[str]) -> list[int]:
        """Every process of the container (its cgroup and those below),
        read where pyoci made the directory; none: []."""
        return common.pids(paths, created=created)

    def kill(self, paths: dict[str, str], sig: int, *, created: Collection[str]) -> list[int]:
        """`kill --all`: signal every process of pids(); the pids signalled."""
        return common.signal_all(paths, sig, created=created)

    def own(self, pid: str = "self") -> dict[str, str]:
        """controller -> path of a process's cgroup ("" key: the v2 one)."""
        return common.own_cgroups(pid)

    def process_dirs(self, pid: int) -> list[str]:
        """The directories of pid's cgroups that are not the caller's own
        (delete, where nothing records which ones pyoci made: named, never
        removed)."""
        try:
            theirs, mine = common.own_cgroups(str(pid)), common.own_cgroups()
        except OSError:
            return []
        lay = self.lay
        out = []
        for ctrl, rel in theirs.items():
            base = lay.unified if ctrl == "" else lay.v1.get(ctrl)
            if base and rel != mine.get(ctrl) and rel not in ("", "/"):
                d = os.path.normpath(base + rel)
                if d not in out:
                    out.append(d)
        return out

    # -- the end
    def destroy(self, paths: dict[str, str], created: list[str], kill: bool, timeout: float = 5.0) -> None:
        """delete: remove the directories pyoci made, and what is below
        them; with ``kill``, SIGKILL what is still in them first."""
        common.destroy(paths, created, kill, timeout)

    def remove(self, created: list[str]) -> None:
        """rmdir what create made, deepest first (create's error path)."""
        common.remove(created)


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

    def delegated_paths(self, cgroups_path: str | None, cid: str,
                        paths: dict[str, str]) -> dict[str, str] | None:
        """``paths`` (beside the caller's own cgroup, as for root) when that
        is writable; else, for a relative path, the same path below the
        caller's own cgroup when only that is writable (placement and
        freezing work there; controllers cannot be enabled below a cgroup
        that holds processes, so limits fail naming the reason)."""
        if self.delegated(paths):
            return paths
        rel = cgroups_path or cid
        lay = self.lay
        if not lay.unified or rel.startswith("/") or ":" in rel:
            return None
        below = {"": lay.unified + common._join(common.own_cgroups().get("", "/"), rel)}
        return below if self.delegated(below) else None

    def apply(self, resources: dict[str, Any], paths: dict[str, str],
              nodes: list[dict[str, Any]] | None = None, rootless: bool = False, *,
              prefix: str = "$.linux.resources", update: bool = False) -> None:
        from pyoci.cgroups import v2

        if "" in paths and self.lay.unified:
            v2.apply(resources, paths[""], self.lay.unified, nodes, rootless=rootless)


def for_layout(lay: Layout) -> Manager:
    """The manager for a layout."""
    if common.is_v2(lay):
        return V2Manager(lay)
    if lay.unified is not None and lay.v1:
        return HybridManager(lay)
    return V1Manager(lay)


def for_host() -> Manager:
    """The manager for this host's layout, read from mountinfo now."""
    return for_layout(layout())


def for_paths(paths: dict[str, str]) -> Manager:
    """The manager of a container create made, chosen from the cgroup paths
    it recorded (as stats.v1_paths decides): a cgroup2 directory ("") with
    v1 controllers beside it is the hybrid layout, alone (or beside a named
    hierarchy such as name=systemd) v2, none v1.  Nothing is read: the
    layout is read only if a method needs it (apply, delegated)."""
    v1 = any(ctrl and not ctrl.startswith("name=") for ctrl in paths)
    if "" in paths:
        return HybridManager() if v1 else V2Manager()
    return V1Manager()
