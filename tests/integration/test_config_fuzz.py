"""Fuzz config.json against the real binary, as root and rootless (issue 12).

Every case (fuzzconfig.make_case: a busybox config with one to four seeded
mutations) is written as the bundle's config.json, then `pyoci create` runs;
when it succeeds, `pyoci delete --force`.  Each case must:

* end within 10 s per command (no hang);
* succeed, or fail with exactly one stderr line ``pyoci: ...`` that is not an
  "internal error ... please report this";
* leave nothing: no state directory, mount, process (ocitest's leak checks)
  and no cgroup directory (checked here).

`make test` runs FUZZ_N cases per mode (default 150 as root, 75 rootless) with
a new seed each run; `make fuzz` runs more.  A failure prints the seed and the
case number: ``FUZZ_SEED=<seed> FUZZ_CASE=<n> make fuzz`` replays that case
alone.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import fuzzconfig, ocitest
from helpers.ocitest import Env, HostUser
from helpers.users import Rootless

SEED = os.environ.get("FUZZ_SEED") or secrets.token_hex(4)
ONLY_CASE = os.environ.get("FUZZ_CASE")
# FUZZ_RUNTIME=runc runs the same cases against runc, for comparison (its
# error line is logrus's `time=... level=error msg=...`, not `pyoci: ...`).
RUNTIME = os.environ.get("FUZZ_RUNTIME") or "pyoci"
TIMEOUT = 10.0
CGROUP_ROOT = "/sys/fs/cgroup"


def _cases(default: int) -> list[int]:
    if ONLY_CASE:
        return [int(ONLY_CASE)]
    return list(range(int(os.environ.get("FUZZ_N") or default)))


# -- cgroups left behind -------------------------------------------------------------


def _cgroup_dirs(marker: str) -> list[Path]:
    """Cgroup directories whose name holds *marker*: under each hierarchy's
    root and under this process's own cgroup there (where pyoci nests a
    relative placement)."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            own[c.removeprefix("name=")] = path
    found = []
    try:
        hierarchies = os.listdir(CGROUP_ROOT)
    except OSError:
        return []
    for h in hierarchies:
        top = Path(CGROUP_ROOT, h)
        if not top.is_dir() or top.is_symlink():
            continue
        ctrl = "" if h == "unified" else h
        bases = {top}
        for key in (ctrl, h):
            if key in own:
                bases.add(Path(str(top) + own[key].rstrip("/")))
        for base in bases:
            try:
                names = os.listdir(base)
            except OSError:
                continue
            found += [base / n for n in names if marker in n and (base / n).is_dir()]
    return sorted(set(found))


def _remove_cgroups(dirs: list[Path]) -> None:
    for d in dirs:
        for sub, _, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
            try:
                os.rmdir(sub)
            except OSError:
                pass


# -- one case ----------------------------------------------------------------------


class Runner:
    def __init__(self, env: Env, bundle: ocitest.Bundle, *, rootless: Rootless | None) -> None:
        self.env = env
        self.bundle = bundle
        self.rl = rootless
        self.marker = env.token[:8]
        self.cgroups_path = f"/fz-{self.marker}-cg"
        self.base: dict[str, Any] = bundle.config
        self.failures: list[str] = []
        self.outputs: list[str] = []
        self.stats = {"cases": 0, "created": 0, "refused": 0, "failed": 0, "internal": 0, "hangs": 0,
                      "leftovers": 0}

    def pyoci(self, *args: str) -> ocitest.Result:
        """Run the runtime under test (pyoci, or runc with FUZZ_RUNTIME=runc)."""
        root = self.rl.root if self.rl is not None else self.env.root
        extra = {"XDG_RUNTIME_DIR": str(self.rl.xdg)} if self.rl is not None else None
        cmd, full_env = self.env.command(args, root=root, user=self.rl.user if self.rl else None, env=extra)
        if RUNTIME != "pyoci":
            cmd = [shutil.which(RUNTIME) or RUNTIME if c == ocitest.PYOCI else c for c in cmd]
        n = len(self.outputs)
        out, err = self.env.tmp / f".fz-out.{n}", self.env.tmp / f".fz-err.{n}"
        self.outputs.append("")
        with open(out, "wb") as fo, open(err, "wb") as fe:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, timeout=TIMEOUT,
                               env=full_env if self.rl is None else {"PATH": ocitest.BASE_PATH},
                               close_fds=True)
        return ocitest.Result(cmd, p.returncode, out.read_text(errors="replace"),
                              err.read_text(errors="replace"))

    def write(self, text: bytes) -> None:
        path = self.bundle.path / "config.json"
        path.write_bytes(text)
        if self.rl is not None:
            os.chown(path, self.rl.user.uid, self.rl.user.gid)

    def case(self, n: int) -> None:
        text, what = fuzzconfig.make_case(SEED, n, self.base, rootfs=str(self.base["root"]["path"]),
                                          cgroups_path=self.cgroups_path, rootless=self.rl is not None)
        self.write(text)
        sysctls = _host_sysctls(text)
        cid = self.env.cid("fz")
        problems: list[str] = []
        outputs: list[str] = []
        self.stats["cases"] += 1
        try:
            r = self.pyoci("create", "--bundle", str(self.bundle.path), cid)
            outputs.append(str(r))
            problems += _judge(r)
            self.stats["created" if r.rc == 0 else "refused"] += 1
            if r.rc == 0:
                d = self.pyoci("delete", "--force", cid)
                outputs.append(str(d))
                if d.rc != 0:
                    problems.append("delete --force failed")
                problems += _internal(d)
        except subprocess.TimeoutExpired as e:
            problems.append(f"hang: {' '.join(map(str, e.cmd))[-200:]} ran over {TIMEOUT:.0f} s")
            self.stats["hangs"] += 1
        changed = [f"{k}: {v!r} -> {now!r}" for k, v in sysctls.items() if (now := _read_sysctl(k)) != v]
        if changed:
            problems.append("host sysctl changed: " + "; ".join(changed))
        leaks = ocitest.check_leaks(self.env, wait=2.0)
        cgroups = _cgroup_dirs(self.marker)
        if cgroups:
            leaks += [f"cgroup left: {d}" for d in cgroups]
        if leaks:
            problems.append("left behind: " + "; ".join(leaks))
            self.stats["leftovers"] += 1
            for line in ocitest.find_state_leaks(self.env):
                # a forced delete of what is left, as an operator would
                self.pyoci("delete", "--force", os.path.basename(line))
            ocitest.clean_up_after_leak(self.env)
            _remove_cgroups(_cgroup_dirs(self.marker))
        if problems:
            self.stats["failed"] += 1
            if "internal error" in problems:
                self.stats["internal"] += 1
            shown = "\n    ".join(o.replace("\n", "\n    ") for o in outputs)
            self.failures.append(
                f"case {n} ({'; '.join(what)}): {'; '.join(problems)}\n"
                f"    replay: FUZZ_SEED={SEED} FUZZ_CASE={n} make fuzz\n    {shown}")


def _read_sysctl(key: str) -> str | None:
    try:
        return Path("/proc/sys", key).read_text()
    except (OSError, ValueError):     # (a key that is no file name: a lone surrogate)
        return None


def _host_sysctls(text: bytes) -> dict[str, str | None]:
    """The host's values of the sysctls the case's config names (they must
    be the same after it: issue 12 items 1 and 6)."""
    try:
        doc = json.loads(text)
        keys = doc["linux"]["sysctl"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return {}
    out: dict[str, str | None] = {}
    for k in keys if isinstance(keys, dict) else ():
        path = k.replace(".", "/") if isinstance(k, str) and "/" not in k else k
        if isinstance(path, str) and path and "\x00" not in path and ".." not in path \
                and not path.startswith("/"):
            out[path] = _read_sysctl(path)
    return out


def _internal(r: ocitest.Result) -> list[str]:
    text = r.stderr.lower()
    if "internal error" in text or "please report" in text or "traceback" in text or "panic:" in text:
        return ["internal error"]
    return []


def _judge(r: ocitest.Result) -> list[str]:
    problems = _internal(r)
    if r.rc != 0:
        # Warnings may come first (unknown capabilities, as runc); the error is one line.
        lines = [ln for ln in r.err_lines if not ln.startswith("pyoci: warning: ")
                 and not (RUNTIME != "pyoci" and "level=warning" in ln)]
        if len(lines) != 1:
            problems.append(f"failed with {len(lines)} stderr lines, not one")
        elif RUNTIME == "pyoci" and (not lines[0].startswith("pyoci: ") or len(lines[0]) < 12):
            problems.append("the error line is not a clear `pyoci: ...` line")
        elif len(lines[0]) > 5000:
            problems.append(f"the error line has {len(lines[0])} characters")
        if r.rc != 1 and r.rc != 2:
            problems.append(f"exit status {r.rc}")
    return problems


def _report(runner: Runner, mode: str, n: int) -> None:
    figures = ", ".join(f"{k} {v}" for k, v in runner.stats.items())
    print(f"config fuzz {mode} ({RUNTIME}, FUZZ_SEED={SEED}): {figures}")
    if runner.failures:
        head = f"{len(runner.failures)} of {n} fuzzed configs failed ({mode}, FUZZ_SEED={SEED}):\n"
        pytest.fail(head + "\n".join(runner.failures[:8]), pytrace=False)


def test_config_fuzz_root(oci: Env) -> None:
    b = oci.bundle(["true"], name="fuzz")
    runner = Runner(oci, b, rootless=None)
    cases = _cases(150)
    for n in cases:
        runner.case(n)
    _report(runner, "root", len(cases))


def test_config_fuzz_rootless(oci: Env, test_user: HostUser) -> None:  # noqa: F811
    rl = Rootless(oci, test_user)
    b = rl.bundle(["true"], name="fuzz")
    rl.save(b)
    runner = Runner(oci, b, rootless=rl)
    cases = _cases(75)
    for n in cases:
        runner.case(n)
    _report(runner, "rootless", len(cases))
