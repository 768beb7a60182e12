"""The container's cgroups: one manager interface (manager.py) over the v1,
v2 and hybrid layouts.

The rest of pyoci imports manager.py alone: it gets one Manager per
command (``for_host()``, or ``for_paths(paths)`` for a container's
recorded cgroups) and calls its methods (container_paths, check, make,
place, apply, update, freeze, thaw, stats, pids, kill, destroy, remove,
...).  The modules behind it, each importing only those above it in this
list:

* common.py: the layout, the container's paths, making and placing, the
  frozen check, signalling and removing only what pyoci created;
* v1.py: linux.resources on v1 controllers (and the v1 freezer);
* bpfdev.py: device rules as an eBPF program (v2, and hybrid hosts);
* v2.py: linux.resources on cgroup2, controller enabling, the v2 freezer,
  rootless delegation;
* stats.py: the statistics and OOM notification of `pyoci events`;
* manager.py: Manager and its V1/V2/Hybrid implementations.

This file stays empty of imports: importing any module of the package runs
it first.
"""
