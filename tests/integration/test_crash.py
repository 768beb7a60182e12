"""Crash injection: SIGKILL the runtime at a random moment of `create`,
`start`, `exec` and `delete`, then check that `state` and `list` answer at
once (< 1 s), that `delete --force` succeeds and leaves nothing (no state
directory, mount, process or cgroup), and that the bundle is untouched.

CRASH_N trials (24 in `make test`; `make crash` runs hundreds), CRASH_SEED
replays a run (printed at the start), CRASH_RUNTIME=runc runs the same
trials against runc for comparison.  The figures (trials, failures,
leftovers) are printed at the end (pytest -s shows them).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.ocitest import Env, cgroup_dirs_named, check_leaks, clean_up_after_leak

N = int(os.environ.get("CRASH_N", "24"))
RUNTIME = os.environ.get("CRASH_RUNTIME", "pyoci")
VERBS = ("create", "start", "exec", "delete")


def _seed() -> int:
    return int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1 << 32))


class Runtime:
    def __init__(self, oci: Env) -> None:
        self.oci = oci

    def command(self, *args: str) -> tuple[list[str], dict[str, str]]:
        if RUNTIME == "runc":
            return ["runc", "--root", str(self.oci.root), *args], self.oci.base_env()
        return self.oci.command(args)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        cmd, env = self.command(*args)
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, close_fds=True)

    def run(self, *args: str, timeout: float = 30) -> tuple[int, str, str, float]:
        cmd, env = self.command(*args)
        t0 = time.monotonic()
        # stdio to files: a container started by create keeps them open
        with open(self.oci.path(".crash.out"), "w+b") as fo, open(self.oci.path(".crash.err"), "w+b") as fe:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=env,
                               timeout=timeout, close_fds=True)
            dt = time.monotonic() - t0
            fo.seek(0)
            fe.seek(0)
            return p.returncode, fo.read().decode(errors="replace"), fe.read().decode(errors="replace"), dt


def _bundle_digest(path: Path) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(path)):
        dirnames.sort()
        for name in sorted(filenames + dirnames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            h.update(f"{os.path.relpath(full, path)} {st.st_mode:o} {st.st_size} {st.st_mtime_ns}\n".encode())
    h.update((path / "config.json").read_bytes())
    return h.hexdigest()


def _prepare(rt: Runtime, verb: str, bundle: Path, cid: str, rng: random.Random) -> list[str]:
    """Bring cid to where the verb starts; return the verb's arguments."""
    if verb == "create":
        return ["create", "--bundle", str(bundle), cid]
    rc, _, err, _ = rt.run("create", "--bundle", str(bundle), cid)
    assert rc == 0, err
    if verb == "start":
        return ["start", cid]
    if verb == "exec" or rng.random() < 0.5:
        rc, _, err, _ = rt.run("start", cid)
        assert rc == 0, err
    if verb == "exec":
        return ["exec", cid, "true"]
    return ["delete", "--force", cid]


def _check(rt: Runtime, oci: Env, cid: str) -> list[str]:
    problems = []
    rc, out, err, dt = rt.run("state", cid)
    if dt > 1.0:
        problems.append(f"state took {dt:.2f} s")
    if rc != 0 and "does not exist" not in err and "not exist" not in err:
        problems.append(f"state failed: {err.strip()}")
    elif rc == 0:
        st = json.loads(out)
        if st.get("status") not in ("creating", "created", "running", "stopped", "paused"):
            problems.append(f"state says {st.get('status')!r}")
    rc, out, err, dt = rt.run("list")
    if dt > 1.0:
        problems.append(f"list took {dt:.2f} s")
    if rc != 0 or err.strip():
        problems.append(f"list: rc {rc}: {err.strip()}")
    rc, out, err, dt = rt.run("delete", "--force", cid)
    if rc != 0:
        problems.append(f"delete --force: rc {rc}: {err.strip()}")
    return problems


def test_crash_injection(oci: Env) -> None:
    if RUNTIME == "runc" and subprocess.run(["which", "runc"], capture_output=True).returncode != 0:
        pytest.skip("runc is not installed")
    seed = _seed()
    print(f"\ncrash injection: runtime {RUNTIME}, CRASH_N={N} CRASH_SEED={seed}")
    rng = random.Random(seed)
    rt = Runtime(oci)
    b = oci.bundle(["sleep", "1000"]).save()
    before = _bundle_digest(b.path)

    # How long each verb takes here: the kill lands anywhere in 0..1.3x that.
    took: dict[str, float] = {}
    for verb in VERBS:
        cid = oci.cid("cal")
        args = _prepare(rt, verb, b.path, cid, rng)
        rc, _, err, took[verb] = rt.run(*args)
        assert rc == 0, f"{verb}: {err}"
        rt.run("delete", "--force", cid)

    failures: list[str] = []
    leftovers: list[str] = []
    failed_trials = left_trials = 0
    per_verb = dict.fromkeys(VERBS, 0)
    for i in range(N):
        verb = rng.choice(VERBS)
        per_verb[verb] += 1
        cid = oci.cid("crash")
        args = _prepare(rt, verb, b.path, cid, rng)
        delay = rng.uniform(0, took[verb] * 1.3)
        p = rt.popen(*args)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        what = f"trial {i} ({verb}, killed after {delay * 1000:.0f} ms)"
        bad = _check(rt, oci, cid)
        failures += [f"{what}: {x}" for x in bad]
        failed_trials += bool(bad)
        left = check_leaks(oci, wait=3.0) + [f"cgroup: {c}" for c in cgroup_dirs_named(cid, exact=False)]
        if left:
            left_trials += 1
            leftovers += [f"{what}: {x}" for x in left]
            clean_up_after_leak(oci)
            for c in sorted(cgroup_dirs_named(cid, exact=False), key=len, reverse=True):
                try:
                    os.rmdir(c)
                except OSError:
                    pass
    if _bundle_digest(b.path) != before:
        failures.append("the bundle changed")
    counts = ", ".join(f"{v} {n}" for v, n in per_verb.items())
    print(f"crash injection: runtime {RUNTIME}: {N} trials ({counts}),"
          f" {failed_trials} failed, {left_trials} left something ({len(leftovers)} leftovers)"
          f" (CRASH_SEED={seed};"
          f" verb times {', '.join(f'{v} {t * 1000:.0f} ms' for v, t in took.items())})")
    for line in failures + leftovers:
        print("  " + line)
    assert not failures and not leftovers, (f"CRASH_SEED={seed}:\n  " + "\n  ".join(failures + leftovers))
