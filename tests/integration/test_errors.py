"""Bad input: every failure is one line on stderr naming what failed (a JSON
path, a file, a syscall), one JSON line in the --log file, a non-zero exit
status, and nothing left behind (no state, no mount, no process)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.ocitest import Bundle, Env, Result

Mutator = Callable[[Bundle, Env], None]


def _raw(text: str) -> Mutator:
    def f(b: Bundle, oci: Env) -> None:
        (b.path / "config.json").write_text(text)
    return f


def _cfg(fn: Callable[[dict], None]) -> Mutator:  # type: ignore[type-arg]
    def f(b: Bundle, oci: Env) -> None:
        fn(b.config)
        b.save()
    return f


def _remove_config(b: Bundle, oci: Env) -> None:
    (b.path / "config.json").unlink()


def _rootfs_is_a_file(b: Bundle, oci: Env) -> None:
    (b.path / "afile").write_text("x")
    b.config["root"]["path"] = "afile"
    b.save()


def _not_executable(b: Bundle, oci: Env) -> None:
    (b.rootfs / "bin" / "noexec").write_text("#!/bin/sh\n")
    os.chmod(b.rootfs / "bin" / "noexec", 0o644)
    b.config["process"]["args"] = ["/bin/noexec"]
    b.save()


def _add_mount(m: dict) -> Mutator:  # type: ignore[type-arg]
    return _cfg(lambda c: c["mounts"].append(m))


def _set_process(key: str, value: object) -> Mutator:
    return _cfg(lambda c: c["process"].__setitem__(key, value))


# what the hook wrote is part of the error, as runc's "exit status 1, stdout: ..., stderr: ..."
_HOOK_FAILED = "status 9, stderr: noise from the hook"


def _failing_hook(stage: str) -> Mutator:
    def f(b: Bundle, oci: Env) -> None:
        b.config["hooks"] = {stage: [oci.hook("echo noise from the hook >&2; exit 9", name=f"{stage}.sh")]}
        b.save()
    return f


def _netns_path(path: str) -> Mutator:
    def f(c: dict) -> None:  # type: ignore[type-arg]
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
        c["linux"]["namespaces"].append({"type": "network", "path": path})
    return _cfg(f)


# name -> (mutation, substrings the error line must hold, verb)
CASES: dict[str, tuple[Mutator, list[str], str]] = {
    "invalid-json": (_raw('{"ociVersion": "1.2.0", '), ["config.json", "not valid JSON", "line 1"], "create"),
    "not-an-object": (_raw("[1, 2]"), ["config.json", "JSON object"], "create"),
    "missing-config": (_remove_config, ["config.json", "No such file or directory"], "create"),
    "bad-oci-version": (_cfg(lambda c: c.__setitem__("ociVersion", "2.0.0")), ["$.ociVersion", "2.0.0"],
                        "create"),
    "schema-args-not-array": (_set_process("args", "sh"), ["$.process.args"], "create"),
    "schema-uid-negative": (_cfg(lambda c: c["process"]["user"].__setitem__("uid", -1)),
                            ["$.process.user.uid"], "create"),
    "schema-mount-no-destination": (_add_mount({"type": "tmpfs", "source": "tmpfs"}), ["$.mounts[7]"],
                                    "create"),
    # (an unknown capability is a warning since runtime-spec 1.1: test_compat.py)
    "relative-cwd": (_set_process("cwd", "tmp"), ["$.process.cwd", "absolute"], "create"),
    # a missing cwd is made (as runc); one below a file cannot be
    "cwd-below-a-file": (_set_process("cwd", "/bin/busybox/sub"), ["/bin/busybox/sub", "$.process.cwd",
                                                                   "Not a directory"], "create"),
    "missing-rootfs": (_cfg(lambda c: c["root"].__setitem__("path", "no-such-rootfs")),
                       ["$.root.path", "no-such-rootfs"], "create"),
    "rootfs-is-a-file": (_rootfs_is_a_file, ["$.root.path", "afile"], "create"),
    "args0-not-found": (_set_process("args", ["/bin/no-such-program"]),
                        ["$.process.args[0]", "/bin/no-such-program", "no such file or directory"], "create"),
    "args0-not-in-path": (_set_process("args", ["no-such-program"]),
                          ["$.process.args[0]", "no-such-program", "executable file not found in $PATH"],
                          "create"),
    "args0-not-executable": (_not_executable, ["$.process.args[0]", "/bin/noexec", "permission denied"],
                             "create"),
    "bind-source-missing": (_add_mount({"destination": "/data", "type": "bind",
                                        "source": "/nonexistent/pyoci-src", "options": ["rbind"]}),
                            ["$.mounts[7]", "/nonexistent/pyoci-src"], "create"),
    "unknown-fstype": (_add_mount({"destination": "/data", "type": "nosuchfs", "source": "x"}),
                       ["$.mounts[7]", "nosuchfs", "No such device"], "create"),
    "unsupported-mount-option": (_add_mount({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                                             "options": ["rrw"]}), ["$.mounts[7].options", "rrw"], "create"),
    "namespace-path-missing": (_netns_path("/run/netns/pyoci-no-such-netns"),
                               ["/run/netns/pyoci-no-such-netns", "No such file or directory"], "create"),
    "namespace-path-wrong-type": (_netns_path("/proc/self/ns/uts"),
                                  ["setns", "/proc/self/ns/uts", "Invalid argument"], "create"),
    "unknown-rlimit": (_cfg(lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1,
                                                                       "hard": 1})),
                       ["$.process.rlimits[1].type", "RLIMIT_BOGUS"], "create"),
    "rlimit-soft-above-hard": (_set_process("rlimits", [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 10}]),
                               ["$.process.rlimits[0]", "RLIMIT_NOFILE"], "create"),
    "rlimit-above-kernel-max": (_set_process("rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1 << 40,
                                                          "hard": 1 << 40}]),
                                ["rlimit", "$.process.rlimits", "Operation not permitted"], "create"),
    "sysctl-unknown-key": (_cfg(lambda c: c["linux"].__setitem__("sysctl", {"kernel.pyoci_nope": "1"})),
                           ["kernel.pyoci_nope", "$.linux.sysctl"], "create"),
    "userns-without-mappings": (_cfg(lambda c: c["linux"]["namespaces"].append({"type": "user"})),
                                ["$.linux.uidMappings"], "create"),
    "hostname-without-uts": (_cfg(lambda c: c["linux"].__setitem__(
        "namespaces", [n for n in c["linux"]["namespaces"] if n["type"] != "uts"])),
        ["$.hostname"], "create"),
    "failing-createRuntime-hook": (_failing_hook("createRuntime"),
                                   ["createRuntime", "$.hooks.createRuntime[0]", _HOOK_FAILED], "create"),
    "failing-createContainer-hook": (_failing_hook("createContainer"),
                                     ["createContainer", "$.hooks.createContainer[0]", _HOOK_FAILED],
                                     "create"),
    # prestart runs in create (runtime-spec 1.0.2+, as runc)
    "failing-prestart-hook": (_failing_hook("prestart"), ["prestart", "$.hooks.prestart[0]", _HOOK_FAILED],
                              "create"),
    "missing-hook-program": (_cfg(lambda c: c.__setitem__(
        "hooks", {"createRuntime": [{"path": "/nonexistent/pyoci-hook"}]})),
        ["createRuntime", "/nonexistent/pyoci-hook"], "create"),
}

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _check_one_error(r: Result, log: Path, substrings: list[str]) -> str:
    assert r.rc != 0, str(r)
    # what a failing hook wrote is part of pyoci's one line (as runc)
    lines = r.err_lines
    assert len(lines) == 1, f"expected exactly one line on stderr:\n{r}"
    line = lines[0]
    assert line.startswith("pyoci: "), line
    assert "Traceback" not in r.stderr
    for s in substrings:
        assert s in line, f"{s!r} not in the error line {line!r}"
    log_lines = log.read_text().splitlines()
    assert len(log_lines) == 1, f"--log holds {log_lines!r}"
    entry = json.loads(log_lines[0])
    assert set(entry) >= {"level", "msg", "time"}, entry
    assert entry["level"] == "error"
    assert TIME_RE.match(entry["time"]), entry["time"]
    assert line == "pyoci: " + entry["msg"], (line, entry["msg"])
    return line


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(oci: Env, case: str) -> None:
    mutate, substrings, verb = CASES[case]
    b = oci.bundle(["sleep", "1000"])
    b.config["hostname"] = "pyoci"
    b.save()
    mutate(b, oci)
    cid = oci.cid()
    log = oci.path("log.json")
    r = oci.pyoci(verb, "--bundle", str(b.path), cid, log=log, log_format="json")
    if r.rc == 0:
        oci.pyoci("delete", "--force", cid)
    _check_one_error(r, log, substrings)
    # nothing left behind: no state directory, `state` does not know it
    assert not (oci.root / cid).exists()
    assert oci.pyoci("state", cid).rc != 0
    # (the fixture then checks for processes and mounts)


def test_text_log_format(oci: Env) -> None:
    b = oci.bundle()
    b.config["process"]["cwd"] = "relative"
    b.save()
    log = oci.path("log.txt")
    r = oci.pyoci("create", "--bundle", str(b.path), oci.cid(), log=log, log_format="text")
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("time=") and "level=error" in lines[0] and "$.process.cwd" in lines[0]


def test_success_leaves_the_log_empty(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"])
    log = oci.path("log.json")
    cid = oci.cid()
    for args in (("create", "--bundle", str(b.path), cid), ("state", cid), ("start", cid), ("list",),
                 ("kill", cid, "KILL")):
        r = oci.pyoci(*args, log=log, log_format="json")
        assert r.rc == 0, str(r)
    oci.wait_status(cid, "stopped")
    oci.pyoci("delete", cid, log=log, log_format="json").ok()
    b2 = oci.bundle(["true"])
    r = oci.pyoci("run", "--bundle", str(b2.path), oci.cid(), log=log, log_format="json")
    assert r.rc == 0 and r.stderr == "", str(r)
    assert not log.exists() or log.read_text() == ""


@pytest.mark.parametrize("args", [("state",), ("start",), ("kill",), ("delete",)])
def test_unknown_container(oci: Env, args: tuple[str, ...]) -> None:
    cid = oci.cid("nosuch")
    log = oci.path("log.json")
    r = oci.pyoci(*args, cid, log=log, log_format="json")
    _check_one_error(r, log, [cid, "does not exist"])


def test_usage_errors(oci: Env) -> None:
    log = oci.path("log.json")
    cases = ((("frobnicate",), "frobnicate"), (("create", "--no-such-flag", "x"), "--no-such-flag"),
             (("kill",), "usage"), (("state", "a", "b"), "exactly one"))
    for args, needle in cases:
        if log.exists():
            log.unlink()
        r = oci.pyoci(*args, log=log, log_format="json")
        assert r.rc != 0, str(r)
        _check_one_error(r, log, [needle])
