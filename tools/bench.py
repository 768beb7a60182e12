"""`make bench`: time pyoci against runc on the same busybox bundle.

    python -m tools.bench [-n N] [--pyoci PATH] [--runc PATH] [--json FILE]

Environment: BENCH_N (default 30) sets N, BENCH_JSON a file for the results
as JSON.  Flags win over the environment.

What is timed (wall clock of the CLI processes, time.perf_counter around
subprocess.run, stdio on /dev/null or a file):

  run /bin/true             `RUNTIME --root R run --bundle B ID` of a bundle whose
                            process.args is ["/bin/true"] (terminal false)
  create+start+delete       `create`, `start`, `state` until it says "stopped"
                            (every poll is counted), `delete`; also timed per step
  exec /bin/true            `exec ID /bin/true` in a running container (one per
                            runtime, `run --detach` of `sleep`), each after a
                            50 ms pause, as engines' execs (health checks) come
                            after idle moments
  state (unknown id)        `state` of an id that does not exist (exits 1): the
                            cost of starting the CLI and looking in --root
  --version                 the cost of starting the CLI at all

Each cell is N samples after 2 unrecorded warm-up rounds; in every round the
two runtimes alternate which goes first.  Each runtime has its own --root
(and its own copy of the bundle) under one temporary directory.  As root the
bundle is a normal one; as any other user it is a rootless one (both runtimes
then run rootless).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any

from tools.busybox import make_bundle

RUNC_CANDIDATES = ("/usr/sbin/runc", "/usr/bin/runc")
WARMUP = 2
STOP_TIMEOUT = 10.0


class BenchError(Exception):
    pass


class Runtime:
    def __init__(self, name: str, exe: str, root: str, bundle: str, errfile: IO[bytes],
                 sleeper: str = "") -> None:
        self.name = name
        self.exe = exe
        self.root = root
        self.bundle = bundle
        self.sleeper = sleeper      # a bundle whose process sleeps, for exec
        self.sleeping = ""          # its running container
        self.errfile = errfile
        self.serial = 0

    def call(self, *args: str, ok: bool = True) -> tuple[int, float]:
        """Run the CLI; return (exit status, seconds)."""
        cmd = [self.exe, "--root", self.root, *args]
        self.errfile.seek(0)
        self.errfile.truncate()
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=self.errfile).returncode
        dt = time.perf_counter() - t0
        if ok and rc != 0:
            self.errfile.seek(0)
            err = self.errfile.read().decode(errors="replace").strip()
            raise BenchError(f"{' '.join(cmd)} exited {rc}: {err}")
        return rc, dt

    def status(self, cid: str) -> tuple[str, float]:
        cmd = [self.exe, "--root", self.root, "state", cid]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.decode().strip()}")
        return str(json.loads(r.stdout)["status"]), dt

    def new_id(self) -> str:
        self.serial += 1
        return f"bench-{self.name}-{os.getpid()}-{self.serial}"

    # --- the benchmarks: each returns {"total": seconds, other steps: seconds} ---

    def bench_run(self) -> dict[str, float]:
        _, dt = self.call("run", "--bundle", self.bundle, self.new_id())
        return {"total": dt}

    def bench_lifecycle(self) -> dict[str, float]:
        cid = self.new_id()
        _, t_create = self.call("create", "--bundle", self.bundle, cid)
        _, t_start = self.call("start", cid)
        t_wait, polls = 0.0, 0
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            status, dt = self.status(cid)
            t_wait += dt
            polls += 1
            if status == "stopped":
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: container {cid} still {status} after {STOP_TIMEOUT} s")
        _, t_delete = self.call("delete", cid)
        return {"total": t_create + t_start + t_wait + t_delete, "create": t_create, "start": t_start,
                "wait (state polls)": t_wait, "delete": t_delete, "polls": polls}

    def bench_exec(self) -> dict[str, float]:
        if not self.sleeping:
            self.sleeping = self.new_id()
            self.call("run", "--detach", "--bundle", self.sleeper, self.sleeping)
        time.sleep(0.05)
        _, dt = self.call("exec", self.sleeping, "/bin/true")
        return {"total": dt}

    def bench_state_missing(self) -> dict[str, float]:
        rc, dt = self.call("state", "bench-no-such-container", ok=False)
        if rc == 0:
            raise BenchError(f"{self.name} state of an unknown id exited 0")
        return {"total": dt}

    def bench_version(self) -> dict[str, float]:
        _, dt = self.call("--version")
        return {"total": dt}

    def cleanup(self) -> None:
        """Delete whatever a failed benchmark left behind."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        for cid in names:
            if cid.startswith("bench-"):
                subprocess.run([self.exe, "--root", self.root, "delete", "--force", cid],
                               stdin=subprocess.DEVNULL, capture_output=True)


BENCHMARKS: list[tuple[str, str, Callable[[Runtime], dict[str, float]]]] = [
    ("run", "run /bin/true", Runtime.bench_run),
    ("lifecycle", "create+start+delete", Runtime.bench_lifecycle),
    ("exec", "exec /bin/true", Runtime.bench_exec),
    ("state_missing", "state (unknown id)", Runtime.bench_state_missing),
    ("version", "--version", Runtime.bench_version),
]
STEPS = ("create", "start", "wait (state polls)", "delete")


def median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def p90_ms(xs: list[float]) -> float:
    """Nearest-rank 90th percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)] * 1000


def find_runc() -> str:
    for p in RUNC_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    found = shutil.which("runc")
    if not found:
        raise BenchError("runc not found (apt-get install runc)")
    return found


def default_pyoci() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "pyoci")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("pyoci")
    if not found:
        raise BenchError("pyoci not found next to this python or on PATH (make install)")
    return found


def _first_line(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return (r.stdout.splitlines() or [""])[0]
    except OSError:
        return ""


def pyoci_install_kind(pyoci: str) -> str:
    """"editable" or "non-editable", from the pip metadata of the python that runs pyoci."""
    python = os.path.join(os.path.dirname(pyoci), "python")
    code = ("import importlib.metadata as m, json\n"
            "d = m.distribution('pyoci').read_text('direct_url.json')\n"
            "e = d and json.loads(d).get('dir_info', {}).get('editable')\n"
            "print('editable' if e else 'non-editable')")
    return _first_line([python, "-I", "-c", code]) or "unknown"


def measure(runtimes: list[Runtime], n: int, progress: IO[str]) -> dict[str, dict[str, list[float]]]:
    """{benchmark key: {runtime name: [seconds...], runtime name + '/' + step: [...]}}"""
    results: dict[str, dict[str, list[float]]] = {}
    for key, label, fn in BENCHMARKS:
        cell: dict[str, list[float]] = {}
        progress.write(f"  {label}: ")
        progress.flush()
        for i in range(WARMUP + n):
            order = runtimes if i % 2 == 0 else runtimes[::-1]
            for rt in order:
                sample = fn(rt)
                if i < WARMUP:
                    continue
                for step, value in sample.items():
                    name = rt.name if step == "total" else f"{rt.name}/{step}"
                    cell.setdefault(name, []).append(value)
            if (i + 1) % 10 == 0:
                progress.write(".")
                progress.flush()
        progress.write(" done\n")
        results[key] = cell
    return results


def summarize(results: dict[str, dict[str, list[float]]], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, _label, _ in BENCHMARKS:
        cell = results[key]
        entry: dict[str, Any] = {}
        for name, samples in cell.items():
            if name.endswith("/polls"):
                entry[name] = {"mean": statistics.mean(samples), "max": max(samples)}
            else:
                entry[name] = {"median_ms": round(median_ms(samples), 3), "p90_ms": round(p90_ms(samples), 3),
                               "samples_ms": [round(s * 1000, 3) for s in samples]}
        a, b = names
        entry["ratio"] = {"median": round(entry[a]["median_ms"] / entry[b]["median_ms"], 3),
                          "p90": round(entry[a]["p90_ms"] / entry[b]["p90_ms"], 3)}
        out[key] = entry
    return out


def table(summary: dict[str, Any], names: list[str]) -> str:
    a, b = names
    head1 = f"{'':<26}{a:>17}{b:>17}{a + '/' + b:>17}"
    head2 = f"{'benchmark (ms)':<26}" + f"{'median':>9}{'p90':>8}" * 3
    lines = [head1, head2, "-" * len(head2)]

    def row(label: str, ea: dict[str, float], eb: dict[str, float]) -> str:
        ra = ea["median_ms"] / eb["median_ms"] if eb["median_ms"] else float("nan")
        rp = ea["p90_ms"] / eb["p90_ms"] if eb["p90_ms"] else float("nan")
        return (f"{label:<26}{ea['median_ms']:>9.1f}{ea['p90_ms']:>8.1f}"
                f"{eb['median_ms']:>9.1f}{eb['p90_ms']:>8.1f}{ra:>9.2f}{rp:>8.2f}")

    for key, label, _ in BENCHMARKS:
        e = summary[key]
        lines.append(row(label, e[a], e[b]))
        if key == "lifecycle":
            for step in STEPS:
                lines.append(row(f"  {step}", e[f"{a}/{step}"], e[f"{b}/{step}"]))
            pa, pb = e[f"{a}/polls"], e[f"{b}/polls"]
            lines.append(f"  {'state polls (mean)':<24}{pa['mean']:>17.2f}{pb['mean']:>17.2f}")
    return "\n".join(lines)


def floor_ms(python: str, n: int) -> float:
    """Median time of `python -c pass`, the least any Python CLI can cost."""
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([python, "-c", "pass"], stdin=subprocess.DEVNULL)
        xs.append(time.perf_counter() - t0)
    return median_ms(xs)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench",
                                 description="time pyoci against runc")
    ap.add_argument("-n", type=int, default=int(os.environ.get("BENCH_N") or 30),
                    help="samples per runtime and benchmark (env BENCH_N, default 30)")
    ap.add_argument("--pyoci", help="pyoci executable (default: the one next to this python)")
    ap.add_argument("--runc", help="runc executable (default: /usr/sbin/runc or /usr/bin/runc)")
    ap.add_argument("--json", default=os.environ.get("BENCH_JSON") or None,
                    help="also write the results here as JSON (env BENCH_JSON)")
    a = ap.parse_args(argv)
    if a.n < 1:
        ap.error("-n must be at least 1")
    try:
        pyoci = os.path.abspath(a.pyoci or default_pyoci())
        runc = os.path.abspath(a.runc or find_runc())
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    rootless = os.geteuid() != 0
    names = ["pyoci", "runc"]
    work = tempfile.mkdtemp(prefix="pyoci-bench-")
    os.chmod(work, 0o755)
    runtimes: list[Runtime] = []
    try:
        for name, exe in zip(names, (pyoci, runc), strict=True):
            bundle = make_bundle(os.path.join(work, f"bundle-{name}"), ["/bin/true"], rootless=rootless,
                                 terminal=False)
            sleeper = make_bundle(os.path.join(work, f"sleeper-{name}"), ["sleep", "3600"],
                                  rootless=rootless, terminal=False)
            errfile = open(os.path.join(work, f"{name}.stderr"), "w+b")
            runtimes.append(Runtime(name, exe, os.path.join(work, f"root-{name}"), bundle, errfile, sleeper))
        info = {
            "pyoci": {"path": pyoci, "version": _first_line([pyoci, "--version"]),
                      "install": pyoci_install_kind(pyoci)},
            "runc": {"path": runc, "version": _first_line([runc, "--version"])},
            "n": a.n, "warmup": WARMUP, "rootless": rootless,
            "machine": {"kernel": platform.release(), "cpus": os.cpu_count(),
                        "python": sys.version.split()[0]},
        }
        print(f"pyoci  {pyoci}  ({info['pyoci']['version']}, {info['pyoci']['install']} install)")
        print(f"runc   {runc}  ({info['runc']['version']})")
        print(f"{a.n} samples per cell after {WARMUP} warm-up rounds, runtimes alternating; "
              f"{'rootless' if rootless else 'as root'}; kernel {platform.release()}, "
              f"{os.cpu_count()} CPUs")
        print("measuring:")
        results = measure(runtimes, a.n, sys.stdout)
        summary = summarize(results, names)
        python = os.path.join(os.path.dirname(pyoci), "python")
        floor = floor_ms(python, a.n) if os.access(python, os.X_OK) else None
        print()
        print(table(summary, names))
        if floor is not None:
            print(f"\nfor scale: `{python} -c pass` takes {floor:.1f} ms (median)")
        if a.json:
            doc = {"info": info, "results": summary, "python_floor_ms": floor}
            with open(a.json, "w") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
            print(f"wrote {a.json}")
        return 0
    except BenchError as e:
        print(f"\nbench: {e}", file=sys.stderr)
        return 1
    finally:
        for rt in runtimes:
            rt.cleanup()
            rt.errfile.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
