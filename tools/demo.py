"""`make demo`: run one busybox container as root and one as an unprivileged user.

    python -m tools.demo --pyoci PYOCI [--user NAME] [--user-python PY] [--user-pyoci PYOCI]

Must run as root.  Both containers run the same shell script, which prints
what the container sees: its ids, its hostname, /proc/self/uid_map, the pid
of the shell (1: it is the container's init) and its process list.

1. As root: a bundle in a fresh directory under /tmp, `PYOCI --root DIR/state
   run --bundle DIR/bundle ID`.
2. As NAME (created with useradd if missing): a directory under /tmp owned by
   NAME, a rootless bundle built by NAME (``USER_PYTHON -m
   tools.busybox DIR --rootless``, which maps NAME's uid and gid to
   root in the container), and `USER_PYOCI --root DIR/state run ...` through
   `runuser -u NAME --`.  USER_PYOCI and USER_PYTHON must be readable and
   executable by NAME (`make demo` installs them under /opt/pyoci).

Exits 0 when both containers exited 0 and printed what was expected.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile

from tools.busybox import make_bundle

SCRIPT = """\
echo "id:         $(id)"
echo "hostname:   $(hostname)"
echo "uid_map:    $(cat /proc/self/uid_map)"
echo "gid_map:    $(cat /proc/self/gid_map)"
echo "pid of sh:  $$"
echo "processes:"
ps -o pid,user,comm | sed 's/^/  /'
"""
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _say(text: str) -> None:
    print(text, flush=True)


def _show(cmd: list[str]) -> None:
    _say("$ " + shlex.join(cmd).replace(shlex.quote(SCRIPT), "'<the script above>'"))


def _run(cmd: list[str], *, cwd: str) -> subprocess.CompletedProcess[str]:
    _show(cmd)
    return subprocess.run(cmd, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True)


def _report(name: str, r: subprocess.CompletedProcess[str], expect_map: str) -> bool:
    for line in r.stdout.splitlines():
        _say("    " + line)
    for line in r.stderr.splitlines():
        _say("    (stderr) " + line)
    problems = []
    if r.returncode != 0:
        problems.append(f"exit status {r.returncode}")
    if "uid=0(root)" not in r.stdout:
        problems.append("the container's process is not uid 0")
    if "pid of sh:  1\n" not in r.stdout:
        problems.append("the shell is not pid 1")
    if " ".join(expect_map.split()) not in " ".join(r.stdout.split()):
        problems.append(f"uid_map is not {expect_map!r}")
    if problems:
        _say(f"FAILED ({name}): " + "; ".join(problems))
        return False
    _say(f"ok ({name})")
    return True


def run_as_root(pyoci: str, keep: bool) -> bool:
    _say("=== 1. as root")
    work = tempfile.mkdtemp(prefix="pyoci-demo-root-")
    os.chmod(work, 0o755)
    try:
        bundle = make_bundle(os.path.join(work, "bundle"), ["sh", "-c", SCRIPT])
        _say(f"built {bundle} (busybox rootfs + config.json from pyoci.cli.spec.default_spec)")
        r = _run([pyoci, "--root", os.path.join(work, "state"), "run", "--bundle", bundle,
                  f"demo-root-{os.getpid()}"], cwd=work)
        return _report("root", r, "0 0 4294967295")
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    cmd = ["useradd", "--user-group", "--create-home", "--shell", "/bin/sh", name]
    _show(cmd)
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    return pwd.getpwnam(name)


def _userns_hint() -> str:
    for path, bad in (("/proc/sys/kernel/unprivileged_userns_clone", "0"),
                      ("/proc/sys/user/max_user_namespaces", "0"),
                      ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1")):
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    return f"{path} is {bad}: unprivileged user namespaces are disabled"
        except OSError:
            pass
    return ""


def run_as_user(user: str, python: str, pyoci: str, keep: bool) -> bool:
    _say(f"=== 2. as the unprivileged user {user}")
    pw = ensure_user(user)
    as_user = ["runuser", "-u", user, "--"]
    work = tempfile.mkdtemp(prefix="pyoci-demo-user-")
    try:
        os.chown(work, pw.pw_uid, pw.pw_gid)
        r = _run(as_user + [pyoci, "--version"], cwd=work)
        if r.returncode != 0:
            _say(r.stdout + r.stderr)
            _say(f"FAILED: {user} cannot run {pyoci} (it must be readable and executable by every user)")
            return False
        bundle = os.path.join(work, "bundle")
        # The bundle builder is not installed (tools/ stays in the checkout,
        # which the user may not be able to read): run a copy from WORK.
        builder = os.path.join(work, "busybox.py")
        shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "busybox.py"), builder)
        os.chmod(builder, 0o644)
        r = _run(as_user + [python, builder, bundle, "--rootless", "--",
                            "sh", "-c", SCRIPT], cwd=work)
        if r.returncode != 0:
            _say(r.stdout + r.stderr)
            _say(f"FAILED: {user} could not build a bundle")
            return False
        _say(f"built {bundle} as {user} (uid {pw.pw_uid}); config maps uid {pw.pw_uid} "
             f"and gid {pw.pw_gid} to 0")
        r = _run(as_user + [pyoci, "--root", os.path.join(work, "state"), "run", "--bundle", bundle,
                            f"demo-user-{os.getpid()}"], cwd=work)
        ok = _report(user, r, f"0 {pw.pw_uid} 1")
        if not ok and (hint := _userns_hint()):
            _say("hint: " + hint)
        return ok
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.demo",
                                 description="run a busybox container as root and as an unprivileged user")
    ap.add_argument("--pyoci", required=True, help="the pyoci executable root runs")
    ap.add_argument("--user", default="pyoci-demo", help="the unprivileged user (created if missing)")
    ap.add_argument("--user-python", help="python with pyoci installed, usable by --user "
                    "(default: the python next to --user-pyoci)")
    ap.add_argument("--user-pyoci", help="the pyoci executable --user runs (default: --pyoci)")
    ap.add_argument("--keep", action="store_true", help="keep the bundles and state directories")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("the demo must run as root (it also runs a container as an unprivileged user)", file=sys.stderr)
        return 1
    _say("Each container runs: sh -c '<the script>':")
    for line in SCRIPT.splitlines():
        _say("    " + line)
    _say("")
    pyoci = os.path.abspath(a.pyoci)
    user_pyoci = os.path.abspath(a.user_pyoci or a.pyoci)
    user_python = os.path.abspath(a.user_python or os.path.join(os.path.dirname(user_pyoci), "python"))
    ok_root = run_as_root(pyoci, a.keep)
    _say("")
    ok_user = run_as_user(a.user, user_python, user_pyoci, a.keep)
    _say("")
    _say(f"=== summary: as root {'ok' if ok_root else 'FAILED'}; "
         f"as {a.user} (rootless) {'ok' if ok_user else 'FAILED'}")
    return 0 if ok_root and ok_user else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
