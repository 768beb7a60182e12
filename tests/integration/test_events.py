"""`pyoci events`: runc's stats JSON (checked against the kernel's files and,
when runc is installed, against `runc events --stats`), the stream, OOM
events as they happen, and the errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.ocitest import Env, wait_for

CG = Path("/sys/fs/cgroup")
pytestmark = pytest.mark.skipif(not (CG / "memory").is_dir() or not (CG / "pids").is_dir(),
                                reason="needs cgroup v1 controllers (this project's CI layout)")
MB = 1 << 20


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def _detached(oci: Env, script: str, resources: dict[str, Any]) -> tuple[str, int]:
    b = oci.bundle()
    b.sh(script)
    b.linux["resources"] = resources
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    return cid, oci.state(cid)["pid"]


def _cg(pid: int, ctrl: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _h, ctrls, rel = line.split(":", 2)
        if ctrl in ctrls.split(","):
            return CG / ctrls / rel.lstrip("/")
    raise AssertionError(f"no {ctrl} cgroup")


def test_stats_once(oci: Env) -> None:
    cid, pid = _detached(oci, "sleep 1000", {"memory": {"limit": 64 * MB}, "pids": {"limit": 50},
                                              "cpu": {"quota": 50000, "period": 100000}})
    try:
        r = oci.pyoci("events", "--stats", cid).ok()
        assert len(r.stdout.splitlines()) == 1
        ev = r.json()
        assert ev["type"] == "stats" and ev["id"] == cid
        data = ev["data"]
        assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                              "network_interfaces"]
        assert data["network_interfaces"] is None
        assert data["pids"] == {"current": 1, "limit": 50}
        mem = data["memory"]
        assert mem["usage"]["limit"] == 64 * MB
        assert mem["usage"]["usage"] > 0 and mem["usage"]["max"] >= mem["usage"]["usage"]
        assert mem["usage"]["failcnt"] == 0
        assert set(mem) >= {"usage", "swap", "kernel", "kernelTCP", "raw"}
        assert mem["raw"]["hierarchical_memory_limit"] == 64 * MB
        usage = data["cpu"]["usage"]
        assert usage["total"] > 0 and len(usage["percpu"]) == os.cpu_count()
        assert "kernel" in usage and "user" in usage
        assert data["cpuset"]["cpus"] == list(range(os.cpu_count() or 1))
        # the numbers are the kernel's
        mem_dir = _cg(pid, "memory")
        assert mem["raw"]["rss"] == int(next(ln.split()[1] for ln in
                                              (mem_dir / "memory.stat").read_text().splitlines()
                                              if ln.startswith("rss ")))
    finally:
        oci.pyoci("delete", "--force", cid).ok()


@pytest.mark.skipif(not shutil.which("runc"), reason="runc not installed")
def test_stats_shape_matches_runc(oci: Env) -> None:
    """The same keys as `runc events --stats` for the same config."""
    res = {"memory": {"limit": 64 * MB}, "pids": {"limit": 50}, "cpu": {"quota": 50000, "period": 100000}}
    cid, _pid = _detached(oci, "sleep 1000", res)
    b = oci.bundle(["sleep", "1000"], name="runc-bundle")
    b.config["process"]["terminal"] = False
    b.linux["resources"] = res
    b.save()
    runc_root = oci.mkdir("runc-state")
    rid = oci.cid("runc")
    runc = ["runc", "--root", str(runc_root)]
    try:
        # no pipes: the container inherits runc's stdio
        with open(oci.path("runc.err"), "wb") as err:
            subprocess.run([*runc, "run", "--detach", "--bundle", str(b.path), rid], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=30)
        theirs = json.loads(subprocess.run([*runc, "events", "--stats", rid], check=True,
                                           capture_output=True, text=True, timeout=30).stdout)
        ours = oci.pyoci("events", "--stats", cid).ok().json()

        def keys(x: Any, path: str = "") -> set[str]:
            if not isinstance(x, dict) or path.endswith(".raw"):
                return set()
            return {f"{path}.{k}" for k in x} | {p for k, v in x.items() for p in keys(v, f"{path}.{k}")}

        # blkio lists the I/O done so far, throttling counts the periods run so far
        # and memory.cache the page cache charged so far: they differ between the
        # two containers, and zeros are left out
        drop = {k for k in keys(theirs) | keys(ours)
                if ".blkio." in k or ".throttling." in k or k == ".data.memory.cache"}
        assert keys(ours) - drop == keys(theirs) - drop
        assert set(ours["data"]["memory"]["raw"]) == set(theirs["data"]["memory"]["raw"])
    finally:
        subprocess.run([*runc, "delete", "--force", rid], capture_output=True, timeout=30)
        oci.pyoci("delete", "--force", cid).ok()


def test_stream_reports_an_oom_kill_and_ends_at_delete(oci: Env) -> None:
    trigger = oci.mkdir("trigger", 0o777)
    b = oci.bundle()
    b.bind(trigger, "/trigger")
    b.sh('while [ ! -e /trigger/go ]; do sleep 0.05; done; '
         'awk "BEGIN{s=\\"a\\"; while (1) s = s s}"; echo awk-rc=$? > /trigger/rc; exec sleep 1000')
    b.linux["resources"] = {"memory": {"limit": 32 * MB}}
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    out = oci.path("events.out")
    p = oci.popen("events", "--interval", "200ms", cid, stdout=out)
    try:
        wait_for(lambda: any(e["type"] == "stats" for e in _lines(out)), what="a first stats event")
        t0 = time.monotonic()
        (trigger / "go").touch()
        wait_for(lambda: any(e["type"] == "oom" for e in _lines(out)), what="the oom event")
        print(f"oom event {time.monotonic() - t0:.2f} s after the trigger")
        wait_for(lambda: (trigger / "rc").exists() and (trigger / "rc").read_text().strip(), what="awk's end")
        assert (trigger / "rc").read_text().strip() == "awk-rc=137"
        oom = [e for e in _lines(out) if e["type"] == "oom"]
        assert oom[0] == {"type": "oom", "id": cid}
        assert len(oom) == 1
        # stats continue; the memory failcnt is the kernel's count of refusals
        n = len(_lines(out))
        wait_for(lambda: len(_lines(out)) > n, what="more stats")
        last = _lines(out)[-1]
        assert last["type"] == "stats" and last["data"]["memory"]["usage"]["failcnt"] > 0
        oci.pyoci("delete", "--force", cid).ok()
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        oci.pyoci("delete", "--force", cid)


def test_interval(oci: Env) -> None:
    cid, _pid = _detached(oci, "sleep 1000", {"pids": {"limit": 20}})
    out = oci.path("events.out")
    p = oci.popen("events", "--interval", "100ms", cid, stdout=out)
    try:
        time.sleep(1.05)
        n = len(_lines(out))
        assert 4 <= n <= 11, n   # 100 ms apart, less the start-up
        assert all(e["type"] == "stats" and e["data"]["pids"]["limit"] == 20 for e in _lines(out))
    finally:
        p.kill()
        p.wait()
        oci.pyoci("delete", "--force", cid).ok()


def test_events_errors(oci: Env) -> None:
    r = oci.pyoci("events", "--stats", "nosuch")
    assert r.rc != 0 and len(r.err_lines) == 1 and "does not exist" in r.stderr, str(r)
    b = oci.bundle(["true"])
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    oci.wait_status(cid, "stopped")
    for args in (["--stats"], []):
        r = oci.pyoci("events", *args, cid)
        assert r.rc != 0 and len(r.err_lines) == 1 and "is not running" in r.stderr, str(r)
    for bad in ("5", "0s", "-1s", "1x", "abc"):
        r = oci.pyoci("events", "--interval", bad, cid)
        assert r.rc == 2 and "--interval" in r.stderr, (bad, str(r))
    oci.pyoci("delete", cid).ok()
