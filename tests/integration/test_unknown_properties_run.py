"""Unknown properties are ignored on the create path (issue 15 item 12;
runtime-spec config.md "Extensibility": runtimes MUST NOT generate an error
for an unknown property).  runc 1.1.5 (Go's encoding/json drops unknown
fields) is the control: the same bundle runs under both."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from helpers.ocitest import Env

RUNC = shutil.which("runc")
UNKNOWN = [
    "$['org.example.top']",
    "$.process['org.example.proc']",
    "$.process.user.futureField",
    "$.root.newRootOption",
    "$.mounts[0].newMountOption",
    "$.linux.someFutureKnob",
    "$.linux.namespaces[0].flags",
    "$.linux.resources.bogus",
    "$.linux.resources.memory.limt",
    "$.linux.resources.pids.max",
]


def test_unknown_properties_are_ignored_and_named_with_debug(oci: Env) -> None:
    b = oci.bundle()
    b.config["org.example.top"] = {"x": 1}
    b.process["org.example.proc"] = True
    b.process["user"]["futureField"] = [1]
    b.config["root"]["newRootOption"] = "x"
    b.config["mounts"][0]["newMountOption"] = {}
    b.linux["someFutureKnob"] = 3
    b.linux["namespaces"][0]["flags"] = 0
    b.linux["resources"] = {"bogus": {"a": 1}, "memory": {"limit": 256 << 20, "limt": 5},
                            "pids": {"limit": 64, "max": 3}}
    b.sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
    r = oci.run(b, None, log=None).ok()
    assert r.stdout.strip() == str(256 << 20)      # the known fields beside them apply
    assert r.stderr == ""
    r = oci.pyoci("--debug", "run", "--bundle", str(b.path), oci.cid()).ok()
    ignored = [ln for ln in r.err_lines if "ignoring unknown property" in ln]
    assert sorted(ln.split("config.json ", 1)[1].split(": ", 1)[0] for ln in ignored) == sorted(UNKNOWN), \
        r.stderr
    if RUNC is None:
        pytest.skip("runc is not installed (the control)")
    root = oci.mkdir("runc-root")
    oci.roots.append(root)
    control = subprocess.run([RUNC, "--root", str(root), "run", "--bundle", str(b.path), oci.cid("runc")],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert control.returncode == 0, control.stderr
