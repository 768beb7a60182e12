"""linux.seccomp, checked from inside real containers.

The runtime's own syscalls (accepting `start`, closing inherited fds, the
credential change, ...) must happen before the filter where a profile need
not allow them; the program itself must run under it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.ocitest import Env

SPEC_FIXTURES = Path(__file__).resolve().parents[2] / "spec-fixtures" / "config" / "good"


def podman_profile() -> dict[str, Any]:
    cfg = json.loads((SPEC_FIXTURES / "podman-root-run-rm.json").read_text())
    profile: dict[str, Any] = cfg["linux"]["seccomp"]
    return profile


def strict_allowlist(blocked: set[str]) -> dict[str, Any]:
    """Podman's profile with some names removed from every ALLOW rule: what
    is not allowed falls to the default action (ERRNO 38, ENOSYS)."""
    profile = podman_profile()
    for rule in profile["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW":
            rule["names"] = [n for n in rule["names"] if n not in blocked]
    profile["syscalls"] = [r for r in profile["syscalls"] if r["names"]]
    return profile


# Syscalls the runtime uses around `start` but a container's program does not
# need: a profile without them must still work.
RUNTIME_ONLY = {"close_range", "accept4", "accept", "recvfrom", "sendto", "sendmsg", "recvmsg",
                "socket", "connect", "bind", "listen"}


@pytest.mark.parametrize("nnp", [False, True], ids=["without-no-new-privs", "with-no-new-privs"])
@pytest.mark.parametrize("user", [0, 1000], ids=["root", "uid-1000"])
def test_strict_profile_runs_and_filters(oci: Env, nnp: bool, user: int) -> None:
    profile = strict_allowlist(RUNTIME_ONLY | {"mkdir", "mkdirat"})
    b = oci.bundle()
    b.config["root"]["readonly"] = False
    b.linux["seccomp"] = profile
    b.process["noNewPrivileges"] = nnp
    b.process["user"] = {"uid": user, "gid": user}
    b.sh("grep '^Seccomp:' /proc/self/status; mkdir /tmp/blocked 2>&1; echo mkdir=$?")
    r = oci.run(b)
    assert r.rc == 0, str(r)
    assert "Seccomp:\t2" in r.stdout
    # mkdir falls to the default action: ENOSYS
    assert "Function not implemented" in r.stdout or "not implemented" in r.stdout.lower()
    assert "mkdir=1" in r.stdout
    assert not (b.rootfs / "tmp" / "blocked").exists()


def test_errno_rule_and_arguments(oci: Env) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            # unknown names are skipped, as libseccomp-based runtimes do
            {"names": ["no_such_syscall_pyoci"], "action": "SCMP_ACT_ERRNO"},
            # only with argument 0 == 12345: never matches a real call
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 12345, "op": "SCMP_CMP_EQ"}]},
        ],
    }
    b = oci.bundle()
    b.config["root"]["readonly"] = False
    b.linux["seccomp"] = profile
    b.sh("mkdir /tmp/x 2>&1; echo mkdir=$?; echo pid=$$")
    r = oci.run(b)
    assert r.rc == 0, str(r)
    assert "Permission denied" in r.stdout
    assert "pid=1" in r.stdout


def test_exec_gets_the_containers_filter(oci: Env) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    b = oci.bundle(["sleep", "30"])
    b.config["root"]["readonly"] = False
    b.linux["seccomp"] = profile
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    try:
        r = oci.pyoci("exec", cid, "sh", "-c", "mkdir /tmp/y 2>&1; grep '^Seccomp:' /proc/self/status")
        assert r.rc == 0, str(r)
        assert "Permission denied" in r.stdout
        assert "Seccomp:\t2" in r.stdout
    finally:
        oci.pyoci("delete", "--force", cid).ok()


@pytest.mark.parametrize("field,value,path", [
    ("defaultAction", "SCMP_ACT_BOGUS", "$.linux.seccomp.defaultAction"),
    ("architectures", ["SCMP_ARCH_NOPE"], "$.linux.seccomp.architectures[0]"),
])
def test_bad_profile_is_rejected(oci: Env, field: str, value: Any, path: str) -> None:
    profile: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW"}
    profile[field] = value
    b = oci.bundle()
    b.linux["seccomp"] = profile
    r = oci.run(b)
    assert r.rc != 0
    assert len(r.err_lines) == 1, str(r)
    assert path in r.err_lines[0] or "seccomp" in r.err_lines[0], str(r)
