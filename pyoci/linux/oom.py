"""Why a container's init died during setup, when the memory cgroup killed it.

A memory limit the kernel takes but no process can live in
(``linux.resources.memory.limit`` 1 is rounded down to 0 pages) is written
while the cgroup is still empty, so the write succeeds; the init is then
killed by the OOM killer the moment it is charged for memory, and the sync
socket closes without a report.  The memory cgroup counted the kill: this
module reads that count (v1 ``memory.oom_control``, v2 ``memory.events``)
and turns "exited during setup without a report" into what the kernel did.
"""

from __future__ import annotations

import os

from pyoci.errors import ChildError, PyociError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _oom_kills(text: str | None) -> int:
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def setup_oom_error(cg_paths: dict[str, str], resources: dict[str, Any] | None) -> PyociError | None:
    """A ChildError saying the init was OOM-killed in its memory cgroup, or
    None when the cgroup counted no OOM kill (or cannot be read)."""
    candidates = []
    if cg_paths.get("memory"):
        d = cg_paths["memory"]
        candidates.append((d, "memory.oom_control", "memory.limit_in_bytes"))
    if cg_paths.get(""):
        d = cg_paths[""]
        candidates.append((d, "memory.events", "memory.max"))
    for d, events, limit_file in candidates:
        if not _oom_kills(_read(os.path.join(d, events))):
            continue
        limit = (_read(os.path.join(d, limit_file)) or "?").strip()
        asked = ((resources or {}).get("memory") or {}).get("limit")
        what = f" ($.linux.resources.memory.limit {asked})" if asked is not None else ""
        return ChildError(
            "the container's init was killed by the kernel's OOM killer during setup: "
            f"{os.path.join(d, limit_file)} is {limit}{what}",
            op="memory cgroup",
            hint="the memory limit must leave room for the container's processes; raise it")
    return None
