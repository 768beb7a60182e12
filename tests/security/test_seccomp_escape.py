"""Syscalls a seccomp profile denies stay denied: through the native entry,
through the i386 one (int $0x80, which a filter checking only the native
architecture lets through), for the container's init and for `exec`.

The profile is the one Podman installs, /usr/share/containers/seccomp.json,
turned into linux.seccomp the way Podman does it (rules kept or dropped by
the container's capabilities, architecture and kernel version).  That
profile (this machine's containers-common) allows keyctl(2), unshare(2) and
clone(2) with namespace flags; add_key, request_key, personality with other
personas, userfaultfd and io_uring fall to its default action (ENOSYS).  A
second profile adds what Docker's default profile forbids: keyctl,
add_key, request_key, unshare, clone3, and clone with namespace flags.

probe.c (static: the rootfs has no libc) tries each syscall in a child and
prints "NAME ok" or "NAME errno=E"; the naive demonstration runs the same
probe outside any filter, where every one of them succeeds.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.ocitest import BASE_PATH
from helpers.secutil import Side, install

PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")

CLONE_NEWUSER = 0x10000000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (Docker's mask)
CLONE_NS_FLAGS = 0x7E020000

# probe name -> (syscall, arguments the probe passes, as far as a rule may look at them)
PROBES: dict[str, tuple[str, tuple[int, ...]]] = {
    "keyctl": ("keyctl", (1, 0)),
    "add_key": ("add_key", ()),
    "request_key": ("request_key", ()),
    "unshare_user": ("unshare", (CLONE_NEWUSER,)),
    "clone_user": ("clone", (CLONE_NEWUSER | 17,)),
    "personality": ("personality", (0x0040000,)),
    "userfaultfd": ("userfaultfd", (0o2000000 | 1,)),
    "io_uring_setup": ("io_uring_setup", (1,)),
    "keyctl32": ("keyctl", (1, 0)),
    "add_key32": ("add_key", ()),
    "unshare_user32": ("unshare", (CLONE_NEWUSER,)),
}


def _kernel() -> tuple[int, ...]:
    return tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])


def podman_profile(caps: list[str]) -> dict[str, Any]:
    """linux.seccomp from Podman's seccomp.json for a container with these
    bounding capabilities on x86_64 (containers/common's rules: includes
    need every listed capability, excludes drop a rule for any of them)."""
    src = json.loads(PODMAN_PROFILE.read_text())
    arches = ["SCMP_ARCH_X86_64"]
    for m in src.get("archMap") or []:
        if m["architecture"] == "SCMP_ARCH_X86_64":
            arches += m.get("subArchitectures") or []
    rules = []
    for r in src["syscalls"]:
        inc, exc = r.get("includes") or {}, r.get("excludes") or {}
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if exc.get("arches") and "amd64" in exc["arches"]:
            continue
        if inc.get("caps") and not set(inc["caps"]) <= set(caps):
            continue
        if exc.get("caps") and set(exc["caps"]) & set(caps):
            continue
        if inc.get("minKernel") and _kernel() < tuple(int(x) for x in inc["minKernel"].split(".")[:2]):
            continue
        rule: dict[str, Any] = {"names": list(r["names"]), "action": r["action"]}
        if r.get("args"):
            keys = ("index", "value", "valueTwo", "op")
            rule["args"] = [{k: a[k] for k in keys if k in a} for a in r["args"]]
        if r.get("errnoRet") is not None:
            rule["errnoRet"] = r["errnoRet"]
        rules.append(rule)
    profile: dict[str, Any] = {"defaultAction": src["defaultAction"], "architectures": arches,
                               "syscalls": rules}
    if src.get("defaultErrnoRet") is not None:
        profile["defaultErrnoRet"] = src["defaultErrnoRet"]
    return profile


def hardened(profile: dict[str, Any]) -> dict[str, Any]:
    """Podman's profile plus Docker's rules for keys and namespaces."""
    p = copy.deepcopy(profile)
    gone = {"keyctl", "add_key", "request_key", "unshare", "clone", "clone3"}
    for r in p["syscalls"]:
        if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args"):
            r["names"] = [n for n in r["names"] if n not in gone]
    p["syscalls"] = [r for r in p["syscalls"] if r["names"]]
    p["syscalls"].append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": CLONE_NS_FLAGS, "valueTwo": 0,
                                    "op": "SCMP_CMP_MASKED_EQ"}]})
    return p


def _matches(rule: dict[str, Any], args: tuple[int, ...]) -> bool:
    for a in rule.get("args") or []:
        i = a["index"]
        if i >= len(args):
            return False
        v, op = args[i], a["op"]
        ok = {"SCMP_CMP_EQ": v == a["value"], "SCMP_CMP_NE": v != a["value"],
              "SCMP_CMP_MASKED_EQ": (v & a["value"]) == a.get("valueTwo", 0)}.get(op)
        if not ok:
            return False
    return True


def expected(profile: dict[str, Any], probe: str) -> str:
    """'ok' or 'errno=E': what the profile does to the probe's call."""
    name, args = PROBES[probe]
    for r in profile["syscalls"]:
        if name in r["names"] and _matches(r, args):
            if r["action"] == "SCMP_ACT_ALLOW":
                return "ok"
            return f"errno={r.get('errnoRet', 1)}"
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    return f"errno={profile.get('defaultErrnoRet', 1)}"


def results(out: str) -> dict[str, str]:
    return {ln.split()[0]: ln.split()[1] for ln in out.splitlines() if ln.split() and ln.split()[0] in PROBES}


def naive(side: Side, probe: Path) -> dict[str, str]:
    """The unprotected path: the same probe, no filter (as root, or as the user)."""
    cmd = [str(probe), "sys"]
    if side.user is not None:
        cmd = ["runuser", "-u", side.user.name, "--", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": BASE_PATH}, check=True).stdout
    got = results(out)
    assert got == {p: "ok" for p in PROBES}, f"without a filter the probe should succeed everywhere:\n{out}"
    return got


def _run_under(side: Side, probe: Path, profile: dict[str, Any]) -> tuple[str, str]:
    b = side.bundle(["/bin/probe", "sys"])
    install(probe, b.rootfs)
    b.linux["seccomp"] = profile
    side.save(b)
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert r.rc == 0, str(r)
    b.set_args("sleep", "30")
    side.save(b)
    cid = side.oci.cid()
    side.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    try:
        e = side.pyoci("exec", cid, "/bin/probe", "sys")
        assert e.rc == 0, str(e)
    finally:
        side.pyoci("delete", "--force", cid).ok()
    return r.stdout, e.stdout


def _compare(profile: dict[str, Any], out: str, what: str, only_denied: bool = True) -> list[str]:
    got, problems = results(out), []
    for p in PROBES:
        want = expected(profile, p)
        if only_denied and want == "ok":
            continue
        if got.get(p) != want:
            problems.append(f"{what}: {p}: got {got.get(p)}, the profile says {want}")
    return problems


@pytest.fixture(scope="module")
def podman_json() -> Path:
    if not PODMAN_PROFILE.exists():
        pytest.skip(f"{PODMAN_PROFILE} is not installed (package containers-common)")
    return PODMAN_PROFILE


def test_podman_profile_denials_hold(side: Side, probe: Path, podman_json: Path) -> None:
    naive(side, probe)
    b = side.bundle(["true"])
    profile = podman_profile(b.process["capabilities"]["bounding"])
    denied = [p for p in PROBES if expected(profile, p) != "ok"]
    assert {"add_key", "add_key32", "personality", "userfaultfd"} <= set(denied), denied
    init, exec_ = _run_under(side, probe, profile)
    problems = _compare(profile, init, "init") + _compare(profile, exec_, "exec")
    assert not problems, "\n".join(problems) + f"\n--- init:\n{init}--- exec:\n{exec_}"


def test_keyctl_and_user_namespaces_denied(side: Side, probe: Path, podman_json: Path) -> None:
    naive(side, probe)
    b = side.bundle(["true"])
    profile = hardened(podman_profile(b.process["capabilities"]["bounding"]))
    for p in ("keyctl", "keyctl32", "unshare_user", "unshare_user32", "clone_user", "add_key", "request_key"):
        assert expected(profile, p) != "ok", p
    init, exec_ = _run_under(side, probe, profile)
    problems = _compare(profile, init, "init") + _compare(profile, exec_, "exec")
    assert not problems, "\n".join(problems) + f"\n--- init:\n{init}--- exec:\n{exec_}"
