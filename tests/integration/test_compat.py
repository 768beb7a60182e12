"""Everyday compatibility with runc (issue 15): configs other tools write,
and habits runc users and engines rely on.  runc 1.1.5 is the control where
it is installed: the same bundle runs under both and gives the same answer."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.ocitest import Bundle, Env, HostUser, caps_mask, run_with_console_socket, status_fields
from helpers.users import Rootless

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
    assert r.err_lines == ["pyoci: warning: ignoring unknown capabilities: 'CAP_UNKNOWN' "
                           "($.process.capabilities.bounding[1])"]
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


# -- 2. loopback up in a new network namespace ------------------------------------

# Serve /etc on 127.0.0.1 and ::1 (busybox httpd) and fetch a file over each.
_LOOPBACK_PROBE = ("ip -o link show lo; "
                   "for a in 127.0.0.1 [::1]; do "
                   "  httpd -p $a:7777 -h /etc && "
                   "  echo \"$a: $(wget -q -O - http://$a:7777/group | head -n1)\"; "
                   "done")


def _has_ipv6() -> bool:
    return Path("/proc/net/if_inet6").exists()


def _check_loopback(out: str) -> None:
    assert ",UP" in out.splitlines()[0], out
    assert "127.0.0.1: root:x:0:" in out, out
    if _has_ipv6():
        assert "[::1]: root:x:0:" in out, out


def test_loopback_is_up_in_a_new_network_namespace(oci: Env) -> None:
    b = oci.bundle()
    b.set_namespace("network")
    b.sh(_LOOPBACK_PROBE)
    _check_loopback(oci.run(b).ok().stdout)


@pytest.fixture
def rl(oci: Env, test_user: HostUser) -> Rootless:  # noqa: F811
    return Rootless(oci, test_user)


def test_loopback_is_up_rootless(rl: Rootless) -> None:
    b = rl.bundle(["true"])
    b.set_namespace("network")
    b.sh(_LOOPBACK_PROBE)
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert r.rc == 0, str(r)
    _check_loopback(r.stdout)


def test_joined_network_namespace_is_left_alone(oci: Env) -> None:
    """A namespace the config joins is its owner's: lo stays as it was."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip")
    name = f"pyoci-{oci.token[:12]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    oci.netns.append(name)
    b = oci.bundle()
    b.set_namespace("network", f"/run/netns/{name}")
    b.sh("ip -o link show lo")
    out = oci.run(b).ok().stdout
    assert "<LOOPBACK>" in out, out
    host = subprocess.run(["ip", "-n", name, "-o", "link", "show", "lo"], capture_output=True,
                          text=True, check=True).stdout
    assert "<LOOPBACK>" in host and "UP" not in host.split(">")[0], host


# -- 3. HOME from the container's /etc/passwd --------------------------------------


def _passwd(b: Bundle, extra: str = "") -> None:
    (b.rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "# a comment\n"
        "broken line\n"
        "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
        "alias:x:1000:1000:second entry of uid 1000:/elsewhere:/bin/sh\n"
        "nohome:x:1001:1001:::/bin/sh\n" + extra)


@pytest.mark.parametrize("uid,env,want", [
    (0, [], "/root"),
    (1000, [], "/home/alice"),                 # the first entry of the uid wins
    (1001, [], "/"),                           # an empty home field
    (4242, [], "/"),                           # no entry
    (1000, ["HOME="], "/home/alice"),          # empty is unset (as runc)
    (1000, ["HOME=/mine"], "/mine"),           # given: kept
])
def test_home_from_passwd(oci: Env, uid: int, env: list[str], want: str) -> None:
    b = oci.bundle()
    _passwd(b)
    b.process["user"] = {"uid": uid, "gid": uid}
    b.process["env"] = [e for e in b.process["env"] if not e.startswith("HOME=")] + env
    b.set_args("sh", "-u", "-c", "echo \"$HOME\"; env | grep -c ^HOME=")
    assert oci.run(b).ok().stdout.split() == [want, "1"]
    if RUNC is not None and uid in (0, 4242):
        control = _runc_run(oci, b)
        assert control.returncode == 0 and control.stdout.split() == [want, "1"], control


def test_home_without_passwd_is_root_dir(oci: Env) -> None:
    b = oci.bundle()
    (b.rootfs / "etc" / "passwd").unlink(missing_ok=True)
    b.process["env"] = ["PATH=/bin"]
    b.set_args("sh", "-u", "-c", "echo $HOME")
    assert oci.run(b).ok().stdout.strip() == "/"


def test_home_for_exec(oci: Env) -> None:
    """exec: the same rule, for `exec --user 1000` and `exec -p` of a process
    without env."""
    b = oci.bundle(["sleep", "1000"])
    _passwd(b)
    b.process["env"] = ["PATH=/bin"]
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    try:
        r = oci.pyoci("exec", cid, "sh", "-u", "-c", "echo $HOME").ok()
        assert r.stdout.strip() == "/root"
        r = oci.pyoci("exec", "--user", "1000", cid, "sh", "-u", "-c", "echo $HOME").ok()
        assert r.stdout.strip() == "/home/alice"
        proc = oci.path("process.json")
        proc.write_text(json.dumps({"args": ["/bin/sh", "-u", "-c", "echo $HOME"], "cwd": "/",
                                    "user": {"uid": 1001, "gid": 1001}}))
        r = oci.pyoci("exec", "-p", str(proc), cid).ok()
        assert r.stdout.strip() == "/"
        r = oci.pyoci("exec", "-e", "HOME=/given", cid, "sh", "-u", "-c", "echo $HOME").ok()
        assert r.stdout.strip() == "/given"
    finally:
        oci.pyoci("delete", "--force", cid)


def test_home_reads_the_containers_passwd_only(oci: Env) -> None:
    """/etc/passwd is the container's: a symlink in the image that points at
    the host's file resolves inside the rootfs, and a fifo or a device in
    its place is not opened for reading (a plain open of a fifo would block
    create forever): HOME is then "/"."""
    b = oci.bundle()
    etc = b.rootfs / "etc"
    (etc / "passwd").unlink()
    (etc / "real-passwd").write_text("root:x:0:0::/inside-root:/bin/sh\n")
    os.symlink("/../../../../../../../etc/../etc/real-passwd", etc / "passwd")
    b.process["env"] = ["PATH=/bin"]
    b.set_args("sh", "-u", "-c", "echo $HOME")
    assert oci.run(b).ok().stdout.strip() == "/inside-root"
    (etc / "passwd").unlink()
    os.mkfifo(etc / "passwd")
    r = oci.run(b).ok()
    assert r.stdout.strip() == "/" and r.duration < 10
    (etc / "passwd").unlink()
    os.symlink("/dev/zero", etc / "passwd")
    assert oci.run(b).ok().stdout.strip() == "/"


# -- 6. terminal ownership -------------------------------------------------------


def test_terminal_belongs_to_the_process_user(oci: Env) -> None:
    """With process.terminal and a non-root user, the pty slave's uid is the
    user's (runc's fixStdioPermissions: the uid only, the gid stays the
    devpts one: 5, the tty group, with the usual gid=5 option)."""
    b = oci.bundle()
    b.process["terminal"] = True
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.sh("stat -c '%u %g' $(tty); stat -Lc '%u %g' /proc/self/fd/0")
    devpts_gid = "5" if any("gid=5" in (m.get("options") or []) for m in b.config["mounts"]) else None
    out = run_with_console_socket(oci, b).out
    lines = out.split()
    assert lines[0] == "1000", out
    if devpts_gid is not None:
        assert lines[1] == devpts_gid, out
    assert lines[2] == "1000", out


def test_exec_terminal_belongs_to_the_process_user(oci: Env) -> None:
    """`exec --tty --user 1000` relayed by pyoci itself: the pty is the user's."""
    b = oci.bundle(["sleep", "1000"])
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    try:
        r = oci.pyoci("exec", "--tty", "--user", "1000:1000", cid, "sh", "-c", "stat -c '%u' $(tty)")
        assert r.rc == 0, str(r)
        assert r.stdout.split() == ["1000"], str(r)
    finally:
        oci.pyoci("delete", "--force", cid)


# -- 7. environment values with newlines ---------------------------------------------

_MULTI = "line1\nline2\nNOT_A_VAR=x\n"


def _environ(out: str) -> list[str]:
    return [e for e in out.split("\0") if e]


def test_env_value_with_newlines_is_one_variable(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"])
    b.process["env"] = ["PATH=/bin", "MULTI=" + _MULTI, "AFTER=1"]
    b.set_args("cat", "/proc/self/environ")
    r = oci.run(b).ok()
    env = _environ(r.stdout)
    assert "MULTI=" + _MULTI in env and "AFTER=1" in env and not any(e.startswith("NOT_A_VAR") for e in env)
    b.set_args("sleep", "1000")
    b.save()
    cid = oci.cid()
    oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
    try:
        r = oci.pyoci("exec", "-e", "EXTRA=a\nb", cid, "cat", "/proc/self/environ").ok()
        env = _environ(r.stdout)
        assert "MULTI=" + _MULTI in env and "EXTRA=a\nb" in env
        proc = oci.path("process.json")
        proc.write_text(json.dumps({"args": ["cat", "/proc/self/environ"], "cwd": "/",
                                    "env": ["PATH=/bin", "P=x\ny"]}))
        assert "P=x\ny" in _environ(oci.pyoci("exec", "-p", str(proc), cid).ok().stdout)
    finally:
        oci.pyoci("delete", "--force", cid)


# -- rootless: the same rules -----------------------------------------------------------


def test_rootless_ambient_without_inheritable_and_home(rl: Rootless) -> None:
    """Buildah's and `runc spec --rootless`'s capabilities (ambient set,
    inheritable empty) run rootless too, and HOME comes from the image."""
    b = rl.bundle(["true"])
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    b.process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps}
    b.process["env"] = ["PATH=/bin"]
    _passwd(b)
    b.set_args("sh", "-u", "-c", "grep CapAmb /proc/self/status; echo $HOME")
    rl.save(b)
    r = rl.pyoci("run", "--bundle", str(b.path), rl.oci.cid())
    assert r.rc == 0, str(r)
    lines = r.stdout.splitlines()
    assert int(status_fields(lines[0])["CapAmb"], 16) == 0 and lines[1] == "/root", str(r)


def test_start_container_hook_argv_as_given(oci: Env) -> None:
    """The init runs startContainer hooks with their args as argv too."""
    b = oci.bundle(["true"])
    b.config["hooks"] = {"startContainer": [{"path": "/bin/busybox", "args": ["sh", "-c", "exit 3"]}]}
    b.save()
    r = oci.run(b)
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    assert "startContainer hook 0 (/bin/busybox) exited with status 3" in r.stderr, str(r)


def test_start_container_hook_output_in_error(oci: Env) -> None:
    """A failing startContainer hook (run by the init in C) has what it wrote
    in its error, in the other hooks' form: one line, escaped, at most 2 KiB
    per stream (runc: `..., stdout: ..., stderr: cat: can't open ...`)."""
    b = oci.bundle(["true"])
    b.config["hooks"] = {"startContainer": [{"path": "/bin/busybox", "args": ["cat", "/nosuchfile"]}]}
    b.save()
    r = oci.run(b)
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    assert ("startContainer hook 0 (/bin/busybox) exited with status 1, "
            "stderr: cat: can't open '/nosuchfile': No such file or directory") in r.err_lines[0], str(r)
    b.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", (
        "printf 'out1\\nout2\\n'; printf 'err1\\n\\033[31merr2\\n' >&2; "
        "head -c 1000000 /dev/zero | tr '\\0' x >&2; exit 2")]}]}
    b.save()
    r = oci.run(b)
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    line = r.err_lines[0]
    assert "exited with status 2, stdout: out1\\nout2, stderr: err1\\n\\x1b[31merr2\\nxxx" in line, str(r)
    assert "x..." in line and len(line) < 5000, str(r)


def test_start_container_hook_timeout_keeps_output(oci: Env) -> None:
    """A startContainer hook that fills its pipes and outlives its timeout
    is killed; the error says so with what it wrote."""
    b = oci.bundle(["true"])
    b.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "timeout": 1, "args": [
        "sh", "-c", "echo started; head -c 200000 /dev/zero >&2; exec sleep 60"]}]}
    b.save()
    r = oci.run(b)
    assert r.rc != 0 and len(r.err_lines) == 1, str(r)
    assert "timed out after 1s, stdout: started, stderr: \\x00" in r.err_lines[0], str(r)


# -- the signals a container's process starts with -------------------------------


class _KernelSigaction(ctypes.Structure):
    _fields_ = [("handler", ctypes.c_void_p), ("flags", ctypes.c_ulong),
                ("restorer", ctypes.c_void_p), ("mask", ctypes.c_ulong)]


_SYS_RT_SIGACTION = 13      # x86_64


@contextlib.contextmanager
def _ignoring(*sigs: int) -> Iterator[None]:
    """This process (and so the commands it starts: ignored signals cross
    execve) ignores ``sigs`` meanwhile, glibc's reserved 32 and 33 included
    (through the kernel's call; glibc's sigaction refuses them)."""
    if os.uname().machine != "x86_64":
        pytest.skip("the raw rt_sigaction layout here is x86_64's")
    libc = ctypes.CDLL(None, use_errno=True)
    old = {s: _KernelSigaction() for s in sigs}
    ign = _KernelSigaction(1, 0, None, 0)       # SIG_IGN
    done = []
    try:
        for s in sigs:
            if libc.syscall(_SYS_RT_SIGACTION, s, ctypes.byref(ign), ctypes.byref(old[s]), 8) != 0:
                raise OSError(ctypes.get_errno(), f"rt_sigaction({s})")
            done.append(s)
        yield
    finally:
        for s in done:
            libc.syscall(_SYS_RT_SIGACTION, s, ctypes.byref(old[s]), None, 8)


_SIG = ("SigBlk", "SigIgn", "SigCgt")


def test_container_process_starts_with_no_signal_blocked_ignored_or_caught(oci: Env) -> None:
    """pyoci-init is started with every signal blocked (pyoci_spawn shares the
    interpreter's memory until its execveat, and no handler of the
    interpreter's may run there) and resets them all: the container's
    program, run and exec'd, has an empty mask and default dispositions,
    though its caller ignores SIGPIPE, SIGHUP and glibc's reserved signals
    32 and 33 (ignored signals cross execve).  runc 1.1.5 resets all but 32."""
    b = oci.bundle(["grep", "^Sig", "/proc/self/status"])     # (no shell: sh ignores SIGQUIT)
    cid = oci.cid()
    with _ignoring(signal.SIGPIPE, signal.SIGHUP, 32, 33):
        fields = status_fields(oci.run(b).ok().stdout)
        b.set_args("sleep", "1000")
        b.save()
        oci.pyoci("run", "-d", "--bundle", str(b.path), cid).ok()
        try:
            r = oci.pyoci("exec", cid, "grep", "^Sig", "/proc/self/status").ok()
            exec_fields = status_fields(r.stdout)
        finally:
            oci.pyoci("delete", "--force", cid)
        theirs = None
        if RUNC is not None:
            b.set_args("grep", "^Sig", "/proc/self/status")
            theirs = status_fields(_runc_run(oci, b).stdout)
    for got in (fields, exec_fields):
        assert {k: int(got[k], 16) for k in _SIG} == {"SigBlk": 0, "SigIgn": 0, "SigCgt": 0}, got
    if theirs is not None:
        assert int(theirs["SigBlk"], 16) == 0 and int(theirs["SigCgt"], 16) == 0
        assert int(theirs["SigIgn"], 16) & ~(1 << 31) == 0, theirs     # runc keeps 32 ignored
