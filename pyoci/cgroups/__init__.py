"""The container's cgroups: one manager interface (manager.py) over the v1,
v2 and hybrid layouts.

Modules, each importing only those above it in this list:

* common.py: the layout, the container's paths, making and placing, the
  frozen check, signalling and removing only what pyoci created;
* v1.py: linux.resources on v1 controllers (and the v1 freezer);
* bpfdev.py: device rules as an eBPF program (v2, and hybrid hosts);
* v2.py: linux.resources on cgroup2, controller enabling, the v2 freezer,
  rootless delegation;
* stats.py: the statistics of `pyoci events`;
* manager.py: Manager and its V1/V2/Hybrid implementations, and the entry
  points the rest of pyoci calls.

This file stays empty of imports: importing any module of the package runs
it first.
"""
