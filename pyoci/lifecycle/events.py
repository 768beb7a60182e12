"""`events`: a container's statistics and OOM notifications, as runc prints them.

``{"type":"stats","id":ID,"data":{...}}`` (see pyoci.cgroups.stats) and
``{"type":"oom","id":ID}``, one JSON object a line.  The stream ends, as
runc's does, when the container's cgroup goes away (delete); a stopped but
not deleted container keeps reporting.  No lock is held while streaming.
"""

from __future__ import annotations

import os
import time

from pyoci.errors import PyociError
from pyoci.lifecycle import store
from pyoci.lifecycle.status import CREATING, STOPPED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _cgroup_paths(root: str, cid: str) -> dict[str, str]:
    with store.open_container(root, cid, peek=True) as c:
        status = c.status()
        if status in (STOPPED, CREATING):
            raise PyociError(f"container {cid!r} is not running ({status})",
                             hint="events and stats need a created, running or paused container")
        st = c.state if c.state is not None else store.no_state()
        paths: dict[str, str] = st.cgroup_paths
        if not paths or not st.cgroups_created:
            raise PyociError(f"container {cid!r} has no cgroup pyoci created, so no statistics",
                             hint="statistics need root (the container's own cgroups)")
        return paths


def stats_event(cid: str, paths: dict[str, str]) -> dict[str, Any]:
    from pyoci.cgroups import manager as cgroups

    return {"type": "stats", "id": cid, "data": cgroups.for_paths(paths).stats(paths)}


def stats(root: str, cid: str) -> dict[str, Any]:
    """One stats event (`events --stats`)."""
    return stats_event(cid, _cgroup_paths(root, cid))


def stream(root: str, cid: str, interval: float, emit: Callable[[dict[str, Any]], None]) -> None:
    """Stats every ``interval`` seconds and an "oom" event per OOM, until the
    container's cgroups are removed."""
    import gc
    import select

    from pyoci.cgroups import manager as cgroups

    # A long wait: the collector again, over nothing the start-up made
    # (as pyoci.lifecycle.run.wait_for; docs/startup-cost.md).
    gc.freeze()
    gc.enable()
    paths = _cgroup_paths(root, cid)
    watch = cgroups.for_paths(paths).watch_oom(paths)
    poller = select.poll()
    if watch.fd >= 0:
        poller.register(watch.fd, watch.events_mask)
    try:
        next_tick = time.monotonic() + interval
        while True:
            wait = max(0.0, next_tick - time.monotonic())
            for _fd, _ev in poller.poll(wait * 1000):
                new, gone = watch.check()
                for _ in range(new):
                    emit({"type": "oom", "id": cid})
                if gone:
                    return
            if time.monotonic() >= next_tick:
                if not any(os.path.isdir(p) for p in paths.values()):
                    return          # deleted
                emit(stats_event(cid, paths))
                next_tick += interval
    finally:
        watch.close()
