"""Leak checks and helpers shared by the containerd, CRI and Docker e2e
tests (tests/e2e/test_containerd.py, test_cri.py, test_docker.py).  The
engines are started by tests/e2e/conftest.py's fixtures and tools.engines.

After every test, LeakCheck.wait_clean() waits up to CLEANUP_WAIT for the
engine to forget the test's containers (shims exit asynchronously after the
last task of a container is deleted), then reports what is left:

* what the engine still lists (ctr containers/tasks, CRI pods/containers,
  ``docker ps -a``);
* a runtime state directory (an entry under the runtime's ``--root``);
* a container cgroup below the engine's cgroup parent;
* a mount under the session directory that was not there before the test;
* a live process of the setup other than the daemons themselves: a shim
  (its command line names the session directory), a container process (its
  root lies in the session directory), a runtime still running.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.e2e import CLEANUP_WAIT, mounts_under, processes_of

from tools.engines import cgroup_dirs


def mount_points(base: str) -> set[str]:
    return {line.split()[4] for line in mounts_under(base)}


@dataclass
class LeakCheck:
    base: str                                   # the session directory
    daemons: set[int]                           # pids that may live on
    state_dirs: list[str]                       # the runtimes' --root/<namespace>
    cgroup_parent: str                          # the engine's containers live below it
    listing: Callable[[], list[str]]            # what the engine still knows of
    mounts_before: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.mounts_before = mount_points(self.base)

    def problems(self) -> list[str]:
        out = [f"engine still lists: {x}" for x in self.listing()]
        for d in self.state_dirs:
            try:
                names = sorted(n for n in os.listdir(d) if not n.startswith("."))
            except FileNotFoundError:
                names = []
            out += [f"runtime state left: {d}/{n}" for n in names]
        tops = {os.path.join("/sys/fs/cgroup", h, self.cgroup_parent.strip("/"))
                for h in os.listdir("/sys/fs/cgroup")}
        out += [f"cgroup left: {d}" for d in cgroup_dirs(self.cgroup_parent) if d not in tops]
        out += [f"mount left: {m}" for m in sorted(mount_points(self.base) - self.mounts_before)]
        out += [desc for _, desc in processes_of(self.base, set(), self.daemons)]
        return out

    def wait_clean(self, timeout: float = CLEANUP_WAIT) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            problems = self.problems()
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(0.2)

    def assert_clean(self, clean_up: Callable[[], None]) -> None:
        """Fail the test if something is left after wait_clean(), once
        ``clean_up`` has removed it (so that the next tests start clean)."""
        problems = self.wait_clean()
        if problems:
            clean_up()
            pytest.fail("left behind after the test:\n  " + "\n  ".join(problems), pytrace=False)


def readme_block(lang: str, marker: str) -> str:
    """The README's ``lang`` code block that contains ``marker``."""
    text = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    for block in re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S):
        if marker in block:
            return str(block)
    raise AssertionError(f"no ```{lang} block with {marker!r} in README.md")


def runtime_state(binary: str, root: str, cid: str) -> dict[str, Any] | None:
    """``<binary> --root <root> state <cid>`` as a dict (None if it fails):
    the container is the named runtime's."""
    r = subprocess.run([binary, "--root", root, "state", cid], capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else None


def cgroup_file(parent: str, cid: str, controller: str, name: str) -> str:
    """The content of a v1 cgroup file of the container ``cid`` whose cgroup
    is ``<parent>/<cid>``."""
    with open(os.path.join("/sys/fs/cgroup", controller, parent.strip("/"), cid, name)) as f:
        return f.read().strip()


def cgroup_of(pid: int, controller: str) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return path
    raise AssertionError(f"pid {pid} has no {controller} cgroup")

