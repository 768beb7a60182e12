"""`make load`: pyoci against runc under concurrent load, side by side.

    python tools/load.py [-r REPS] [-n LIFECYCLES] [-j CONCURRENCY] [-t TEARDOWN]
                         [--pyoci PATH] [--runc PATH] [--json FILE]

Environment: LOAD_REPS (default 5), LOAD_N (100), LOAD_J (20), LOAD_T (50),
LOAD_JSON; flags win.

Three scenarios, each timed by wall clock for the whole batch:

  lifecycles   N container lifecycles, J at once: `create`, `start`, `state`
               every 10 ms until it says "stopped", `delete` (the process is
               /bin/true)
  teardown     T containers running `sleep 3600` (made J at once, not timed),
               then `delete --force` of all T, J at once (timed)
  runs         N `run /bin/true`, J at once (the CPU cost of one whole `run`)

Every command must succeed; after each scenario the runtime's --root must be
empty, no process of the scenario may be left, and no cgroup directory named
after one of its containers.  A failure or a leftover is counted and printed,
never hidden in a median.

Each of the REPS rounds runs both runtimes on the same bundles, alternating
which goes first; the table gives the median (and min/max) of each cell and
pyoci's median over runc's.  As root the bundles are normal ones; as any
other user (e.g. `runuser -u USER -- .venv/bin/python tools/load.py`) rootless
ones, and both runtimes run rootless.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.bench import default_pyoci, find_runc  # noqa: E402
from tools.busybox import make_bundle  # noqa: E402

POLL = 0.010
STOP_TIMEOUT = 30.0


class LoadError(Exception):
    pass


class Runtime:
    def __init__(self, name: str, exe: str, root: str, work: str) -> None:
        self.name = name
        self.exe = exe
        self.root = root
        self.work = work
        self.serial = 0
        self.lock = threading.Lock()
        self.failures: list[str] = []
        self.steps: dict[str, list[float]] = {}     # verb -> seconds of each call

    def new_id(self, stem: str) -> str:
        with self.lock:
            self.serial += 1
            return f"load-{self.name}-{os.getpid()}-{stem}-{self.serial}"

    def call(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """Run the CLI; stdout and stderr go to files, never pipes (a container
        started by `create` inherits them and would hold a pipe open)."""
        with tempfile.TemporaryFile(dir=self.work) as out, tempfile.TemporaryFile(dir=self.work) as err:
            t0 = time.perf_counter()
            rc = subprocess.run([self.exe, "--root", self.root, *args], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=SETSID).returncode
            dt = time.perf_counter() - t0
            verb = " ".join(a for a in args[:2] if a.startswith("-") or a == args[0])
            with self.lock:
                self.steps.setdefault(verb, []).append(dt)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, rc, out.read(), err.read())

    def must(self, *args: str) -> bytes:
        r = self.call(*args)
        if r.returncode != 0:
            msg = f"{self.name} {' '.join(args)} exited {r.returncode}: " \
                  f"{r.stderr.decode(errors='replace').strip()}"
            with self.lock:
                self.failures.append(msg)
            raise LoadError(msg)
        return r.stdout

    def lifecycle(self, bundle: str) -> None:
        cid = self.new_id("lc")
        self.must("create", "--bundle", bundle, cid)
        self.must("start", cid)
        deadline = time.monotonic() + STOP_TIMEOUT
        while json.loads(self.must("state", cid))["status"] != "stopped":
            if time.monotonic() > deadline:
                raise LoadError(f"{self.name}: {cid} did not stop in {STOP_TIMEOUT} s")
            time.sleep(POLL)
        self.must("delete", cid)

    def run_true(self, bundle: str) -> None:
        self.must("run", "--bundle", bundle, self.new_id("run"))

    def start_sleeper(self, bundle: str) -> str:
        cid = self.new_id("td")
        self.must("run", "--detach", "--bundle", bundle, cid)
        return cid

    def leftovers(self, prefix: str) -> list[str]:
        left = []
        try:
            left += [f"state dir {os.path.join(self.root, n)}" for n in os.listdir(self.root)]
        except FileNotFoundError:
            pass
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read()
                root = os.readlink(f"/proc/{name}/root")
            except OSError:
                continue
            if self.work.encode() in cmd or root.startswith(self.work):
                shown = cmd.replace(b"\0", b" ").decode(errors="replace")
                left.append(f"process {name}: {shown}")
        for top in cgroup_roots():
            for dirpath, dirs, _files in os.walk(top):
                for d in dirs:
                    if prefix in d:
                        left.append(f"cgroup {os.path.join(dirpath, d)}")
                dirs[:] = [d for d in dirs if prefix not in d]
        return left

    def cleanup(self) -> None:
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        for cid in names:
            self.call("delete", "--force", cid)


def cgroup_roots() -> list[str]:
    out = []
    try:
        names = os.listdir("/sys/fs/cgroup")
    except OSError:
        return []
    for n in names:
        p = os.path.join("/sys/fs/cgroup", n)
        if os.path.isdir(p) and not os.path.islink(p):
            out.append(p)
    return out or ["/sys/fs/cgroup"]


class CpuMeter:
    """CPU time of this process and everything it starts, containers included:
    this process moves itself into a cgroup of its own in the v1 cpuacct
    hierarchy (root only); the containers' cgroups are made below it."""

    def __init__(self) -> None:
        self.path = ""
        top = "/sys/fs/cgroup/cpuacct"
        if os.geteuid() != 0 or not os.path.isfile(os.path.join(top, "cpuacct.usage")):
            return
        path = os.path.join(top, f"pyoci-load-{os.getpid()}")
        try:
            os.mkdir(path)
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            self.path = path
        except OSError:
            pass

    def read(self) -> float:
        if not self.path:
            return float("nan")
        with open(os.path.join(self.path, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9

    def close(self) -> None:
        if not self.path:
            return
        try:
            with open(os.path.join(os.path.dirname(self.path), "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            os.rmdir(self.path)
        except OSError:
            pass


METER: CpuMeter | None = None
SETSID = False


def batch(jobs: list[Callable[[], Any]], concurrency: int) -> tuple[float, int, list[Any]]:
    """Run the jobs, `concurrency` at once; (seconds, failures, results)."""
    results: list[Any] = []
    failures = 0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(j) for j in jobs]
        for f in futures:
            try:
                results.append(f.result())
            except LoadError:
                failures += 1
    return time.perf_counter() - t0, failures, results


def timed(rt: Runtime, jobs: list[Callable[[], Any]], concurrency: int) -> dict[str, Any]:
    cpu0 = METER.read() if METER else float("nan")
    dt, failed, _ = batch(jobs, concurrency)
    cpu = (METER.read() if METER else float("nan")) - cpu0
    return {"seconds": dt, "cpu_s": cpu, "failures": failed}


def scenario_lifecycles(rt: Runtime, bundle: str, n: int, j: int) -> dict[str, Any]:
    prefix = f"load-{rt.name}-{os.getpid()}-lc-"
    out = timed(rt, [lambda: rt.lifecycle(bundle)] * n, j)
    out["leftovers"] = rt.leftovers(prefix)
    return out


def scenario_teardown(rt: Runtime, bundle: str, t: int, j: int) -> dict[str, Any]:
    prefix = f"load-{rt.name}-{os.getpid()}-td-"
    _, failed_up, ids = batch([lambda: rt.start_sleeper(bundle)] * t, j)
    def delete(cid: str) -> Callable[[], bytes]:
        return lambda: rt.must("delete", "--force", cid)

    out = timed(rt, [delete(cid) for cid in ids], j)
    out["failures"] += failed_up
    out["leftovers"] = rt.leftovers(prefix)
    return out


def scenario_runs(rt: Runtime, bundle: str, n: int, j: int) -> dict[str, Any]:
    prefix = f"load-{rt.name}-{os.getpid()}-run-"
    out = timed(rt, [lambda: rt.run_true(bundle)] * n, j)
    out["leftovers"] = rt.leftovers(prefix)
    return out


SCENARIOS: list[tuple[str, str]] = [("lifecycles", "lifecycles"), ("teardown", "teardown"), ("runs", "runs")]


def main(argv: list[str]) -> int:
    env = os.environ.get
    ap = argparse.ArgumentParser(prog="tools/load.py", description="pyoci against runc under load")
    ap.add_argument("-r", "--reps", type=int, default=int(env("LOAD_REPS") or 5))
    ap.add_argument("-n", "--lifecycles", type=int, default=int(env("LOAD_N") or 100))
    ap.add_argument("-j", "--concurrency", type=int, default=int(env("LOAD_J") or 20))
    ap.add_argument("-t", "--teardown", type=int, default=int(env("LOAD_T") or 50))
    ap.add_argument("--only", choices=["pyoci", "runc"], help="measure one runtime")
    ap.add_argument("--scenario", choices=[s for s, _ in SCENARIOS], help="run one scenario")
    ap.add_argument("--setsid", action="store_true",
                    help="each command in a session of its own (its own scheduler autogroup, as "
                         "engines' calls usually are), not this script's")
    ap.add_argument("--pyoci")
    ap.add_argument("--runc")
    ap.add_argument("--json", default=env("LOAD_JSON") or None)
    a = ap.parse_args(argv)
    if min(a.reps, a.lifecycles, a.concurrency, a.teardown) < 1:
        ap.error("every count must be at least 1")
    try:
        pyoci = os.path.abspath(a.pyoci or default_pyoci())
        runc = os.path.abspath(a.runc or find_runc())
    except Exception as e:  # BenchError
        print(f"load: {e}", file=sys.stderr)
        return 1
    global METER, SETSID
    METER = CpuMeter()
    SETSID = a.setsid
    rootless = os.geteuid() != 0
    work = tempfile.mkdtemp(prefix="pyoci-load-")
    os.chmod(work, 0o755)
    names = [x for x in ("pyoci", "runc") if a.only in (None, x)]
    exes = {"pyoci": pyoci, "runc": runc}
    runtimes = [Runtime(x, exes[x], os.path.join(work, f"root-{x}"), work) for x in names]
    scenarios = [s for s, _ in SCENARIOS if a.scenario in (None, s)]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {s: {x: [] for x in names} for s in scenarios}
    try:
        true_b = make_bundle(os.path.join(work, "bundle-true"), ["/bin/true"], rootless=rootless)
        sleep_b = make_bundle(os.path.join(work, "bundle-sleep"), ["sleep", "3600"], rootless=rootless)
        print(f"pyoci {pyoci}\nrunc  {runc}")
        print(f"{a.reps} rounds, runtimes alternating; lifecycles: {a.lifecycles} at {a.concurrency} "
              f"at once; teardown: {a.teardown} running, deleted {a.concurrency} at once; "
              f"runs: {a.lifecycles} `run`s at {a.concurrency} at once; "
              f"{'rootless' if rootless else 'as root'}; {os.cpu_count()} CPUs")
        for i in range(a.reps):
            order = runtimes if i % 2 == 0 else runtimes[::-1]
            for s in scenarios:
                for rt in order:
                    if s == "lifecycles":
                        r = scenario_lifecycles(rt, true_b, a.lifecycles, a.concurrency)
                    elif s == "runs":
                        r = scenario_runs(rt, true_b, a.lifecycles, a.concurrency)
                    else:
                        r = scenario_teardown(rt, sleep_b, a.teardown, a.concurrency)
                    results[s][rt.name].append(r)
                    extra = f", {r['failures']} failed" if r["failures"] else ""
                    extra += f", {len(r['leftovers'])} LEFT" if r["leftovers"] else ""
                    print(f"  round {i + 1} {s:<10} {rt.name:<5} {r['seconds']:7.3f} s  "
                          f"cpu {r['cpu_s']:7.3f} s"
                          f"{extra}", flush=True)
                    if r["leftovers"]:
                        for x in r["leftovers"][:5]:
                            print(f"      left: {x}")
                        rt.cleanup()
        print()
        head = (f"{'scenario':<12}{'runtime':<8}{'median s':>10}{'min':>8}{'max':>8}{'cpu s':>8}{'failed':>8}"
                f"{'left':>6}")
        print(head)
        print("-" * len(head))
        summary: dict[str, Any] = {}
        bad = 0
        for s in scenarios:
            summary[s] = {}
            for x in names:
                rs = results[s][x]
                secs = [r["seconds"] for r in rs]
                cpu = statistics.median(r["cpu_s"] for r in rs)
                failed = sum(r["failures"] for r in rs)
                left = sum(len(r["leftovers"]) for r in rs)
                bad += failed + left
                summary[s][x] = {"median_s": round(statistics.median(secs), 3), "min_s": round(min(secs), 3),
                                 "max_s": round(max(secs), 3), "samples_s": [round(v, 3) for v in secs],
                                 "cpu_s": round(cpu, 3), "failures": failed, "leftovers": left}
                print(f"{s:<12}{x:<8}{statistics.median(secs):>10.3f}{min(secs):>8.3f}{max(secs):>8.3f}"
                      f"{cpu:>8.3f}{failed:>8}{left:>6}")
            if len(names) == 2:
                ratio = summary[s]["pyoci"]["median_s"] / summary[s]["runc"]["median_s"]
                summary[s]["ratio"] = round(ratio, 3)
                print(f"{s:<12}{'ratio':<8}{ratio:>10.2f}   (pyoci median / runc median)")
        print(f"\nper command under load (ms, all rounds): {'median':>8}{'p90':>8}{'n':>6}")
        for rt in runtimes:
            for verb, xs in sorted(rt.steps.items()):
                xs = sorted(xs)
                p90 = xs[max(0, int(0.9 * len(xs) + 0.5) - 1)]
                med = statistics.median(xs)
                print(f"  {rt.name:<6} {verb:<31}{med * 1000:>8.1f}{p90 * 1000:>8.1f}{len(xs):>6}")
        for rt in runtimes:
            for msg in rt.failures[:5]:
                print(f"failure: {msg}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"rootless": rootless, "reps": a.reps, "lifecycles": a.lifecycles,
                           "concurrency": a.concurrency, "teardown": a.teardown, "results": summary}, f,
                          indent=2)
                f.write("\n")
        return 1 if bad else 0
    finally:
        for rt in runtimes:
            rt.cleanup()
        shutil.rmtree(work, ignore_errors=True)
        METER.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
