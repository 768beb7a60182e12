"""Everyday compatibility with runc (issue 15): configs other tools write,
and habits runc users and engines rely on.  runc 1.1.5 is the control where
it is installed: the same bundle runs under both and gives the same answer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ocitest import Bundle, Env, caps_mask, status_fields

RUNC = shutil.which("runc")


def _runc_spec(oci: Env, rootfs: Path) -> Bundle:
    """A bundle whose config.json is exactly what `runc spec` writes, with
    root.path pointed at a busybox rootfs and no terminal."""
    if RUNC is None:
        pytest.skip("runc is not installed (its `runc spec` output is the fixture)")
    d = oci.mkdir("runc-spec")
    subprocess.run([RUNC, "spec"], cwd=d, check=True)
    cfg = json.loads((d / "config.json").read_text())
    cfg["root"]["path"] = str(rootfs)
    cfg["process"]["terminal"] = False
    b = Bundle(d, cfg)
    oci.bundles.append(b)
    return b


def _runc_run(oci: Env, b: Bundle) -> subprocess.CompletedProcess[str]:
    assert RUNC is not None
    b.save()
    cid = oci.cid("runc")
    root = oci.mkdir("runc-root")
    oci.roots.append(root)
    return subprocess.run([RUNC, "--root", str(root), "run", "--bundle", str(b.path), cid],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


# -- 1. capabilities -----------------------------------------------------------


def test_runc_spec_default_config_runs(oci: Env) -> None:
    """`runc spec`'s config puts CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE
    in ambient with no inheritable set: the kernel allows none of them in the
    ambient set, so runc runs the program without them, and so does pyoci."""
    base = oci.bundle()
    b = _runc_spec(oci, base.rootfs)
    assert b.process["capabilities"]["ambient"] and not b.process["capabilities"].get("inheritable")
    b.sh("grep Cap /proc/self/status")
    r = oci.run(b).ok()
    fields = status_fields(r.stdout)
    assert int(fields["CapAmb"], 16) == 0
    assert int(fields["CapPrm"], 16) == caps_mask(b.process["capabilities"]["permitted"])
    control = _runc_run(oci, b)
    assert control.returncode == 0, control.stderr
    assert status_fields(control.stdout) == fields


def test_ambient_caps_are_what_the_kernel_allows(oci: Env) -> None:
    """Ambient capabilities outside permitted∩inheritable are skipped (debug
    line), the others are raised."""
    b = oci.bundle()
    caps = b.process["capabilities"]
    caps["permitted"] = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"]
    caps["effective"] = list(caps["permitted"])
    caps["bounding"] = list(caps["permitted"])
    caps["inheritable"] = ["CAP_NET_BIND_SERVICE"]
    caps["ambient"] = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.sh("grep Cap /proc/self/status")
    r = oci.run(b).ok()
    assert "warning" not in r.stderr
    fields = status_fields(r.stdout)
    assert int(fields["CapAmb"], 16) == caps_mask(["CAP_NET_BIND_SERVICE"])
    # a non-root user keeps what is ambient across execve
    assert int(fields["CapEff"], 16) == caps_mask(["CAP_NET_BIND_SERVICE"])
    r = oci.pyoci("--debug", "run", "--bundle", str(b.path), oci.cid()).ok()
    assert any("not raising ambient capabilities CAP_KILL ($.process.capabilities.ambient)" in line
               for line in r.err_lines), r.stderr


def test_unknown_capability_warns_and_runs(oci: Env) -> None:
    """runtime-spec 1.1+: a capability the runtime cannot map is a warning
    (as runc: `ignoring unknown or unavailable capabilities`), not an error."""
    b = oci.bundle()
    caps = b.process["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = ["CAP_KILL", "CAP_UNKNOWN"]
    b.sh("grep CapEff /proc/self/status")
    r = oci.run(b).ok()
    assert int(status_fields(r.stdout)["CapEff"], 16) == caps_mask(["CAP_KILL"])
    assert ("pyoci: warning: ignoring unknown capability 'CAP_UNKNOWN' "
            "($.process.capabilities.bounding[1])") in r.err_lines
    if RUNC is not None:
        control = _runc_run(oci, b)
        assert control.returncode == 0 and "CAP_UNKNOWN" in control.stderr


# -- 9. prestart hooks run in create --------------------------------------------


def test_prestart_runs_in_create_like_runc(oci: Env) -> None:
    """runtime-spec 1.0.2+: prestart runs during create, right before
    createRuntime, and (runc 1.1.5) sees the status "creating" and the
    init's pid.  runc is the control."""
    out = oci.mkdir("hookout")
    b = oci.bundle(["sleep", "1000"])

    def hooks(tag: str) -> dict[str, Any]:
        return {stage: [oci.hook(f"cat > {out}/{tag}-{stage}.json; echo {stage} >> {out}/{tag}-order")]
                for stage in ("prestart", "createRuntime")}

    b.config["hooks"] = hooks("pyoci")
    b.save()
    cid = oci.cid()
    oci.pyoci("create", "--bundle", str(b.path), cid).ok()
    pid = oci.state(cid)["pid"]
    oci.pyoci("delete", "--force", cid).ok()
    got = json.loads((out / "pyoci-prestart.json").read_text())
    assert (got["status"], got["pid"], got["id"]) == ("creating", pid, cid)
    assert (out / "pyoci-order").read_text().split() == ["prestart", "createRuntime"]
    if RUNC is None:
        return
    b.config["hooks"] = hooks("runc")
    b.save()
    root = oci.mkdir("runc-root")
    oci.roots.append(root)
    rid = oci.cid("runc")
    subprocess.run([RUNC, "--root", str(root), "create", "--bundle", str(b.path), rid],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True, timeout=60)
    subprocess.run([RUNC, "--root", str(root), "delete", "--force", rid], check=True, timeout=60)
    control = json.loads((out / "runc-prestart.json").read_text())
    assert control["status"] == got["status"]
    assert (out / "runc-order").read_text().split() == ["prestart", "createRuntime"]


def test_failing_prestart_fails_create_and_leaves_nothing(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"])
    b.config["hooks"] = {"prestart": [oci.hook("exit 7")]}
    b.save()
    cid = oci.cid()
    r = oci.pyoci("create", "--bundle", str(b.path), cid)
    assert r.rc == 1 and len(r.err_lines) == 1, str(r)
    assert "$.hooks.prestart[0]" in r.stderr and "status 7" in r.stderr
    assert not (oci.root / cid).exists()
    assert oci.pyoci("state", cid).rc != 0


# -- 8. hooks: argv as given, output in the error --------------------------------


def test_hook_argv_and_output_in_error(oci: Env) -> None:
    """path /bin/busybox with args ["cat", "/nosuchfile"] runs cat (argv[0] as
    given), and the error carries what the hook wrote, on one line (runc:
    `error running hook #0: ... exit status 1, stdout: , stderr: cat: can't open ...`)."""
    b = oci.bundle(["true"])
    b.config["hooks"] = {"createRuntime": [{"path": "/bin/busybox", "args": ["cat", "/nosuchfile"]}]}
    b.save()
    cid = oci.cid()
    r = oci.pyoci("create", "--bundle", str(b.path), cid)
    assert r.rc == 1 and len(r.err_lines) == 1, str(r)
    assert r.err_lines[0].endswith(
        "exited with status 1, stderr: cat: can't open '/nosuchfile': No such file or directory"), str(r)
    assert not (oci.root / cid).exists()
    if RUNC is not None:
        root = oci.mkdir("runc-root")
        oci.roots.append(root)
        control = subprocess.run([RUNC, "--root", str(root), "create", "--bundle", str(b.path),
                                  oci.cid("runc")], stdin=subprocess.DEVNULL, capture_output=True,
                                 text=True, timeout=60)
        assert control.returncode != 0
        assert "stderr: cat: can't open '/nosuchfile'" in control.stderr


def test_hook_output_is_one_bounded_line(oci: Env) -> None:
    b = oci.bundle(["true"])
    b.config["hooks"] = {"prestart": [oci.hook(
        "printf 'out1\\nout2\\n'; printf 'err1\\n\\033[31merr2\\n' >&2; "
        "head -c 1000000 /dev/zero | tr '\\0' x >&2; exit 2")]}
    b.save()
    r = oci.pyoci("create", "--bundle", str(b.path), oci.cid())
    assert r.rc == 1 and len(r.err_lines) == 1, str(r)
    line = r.err_lines[0]
    assert "exited with status 2, stdout: out1\\nout2, stderr: err1\\n\\x1b[31merr2\\nxxx" in line
    assert line.endswith("x...") and len(line) < 5000


def test_hook_leaving_a_daemon_does_not_hold_create(oci: Env) -> None:
    """The hook's exit ends the wait, not the end of its output: a child it
    leaves behind with stdout open does not hang create."""
    b = oci.bundle(["true"])
    pidfile = oci.path("daemon.pid")
    b.config["hooks"] = {"createRuntime": [oci.hook(f"sleep 20 & echo $! > {pidfile}; echo started")]}
    b.save()
    cid = oci.cid()
    try:
        r = oci.pyoci("create", "--bundle", str(b.path), cid).ok()
        assert r.duration < 10, r.duration
        oci.pyoci("delete", "--force", cid).ok()
    finally:
        # the hook's stray child is not the container's: end it (by its pid)
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
