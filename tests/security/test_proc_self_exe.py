"""CVE-2019-5736: the container reaches the runtime's own binary through
/proc/self/exe (or /proc/<pid>/exe) and overwrites it on the host.

pyoci's process that forks is the host's Python interpreter, so until the
user's program is exec'd the container's init (and an `exec`'s process) is a
copy of it whose /proc/<pid>/exe is the host's python.  Attacks:

* an entrypoint `#!/proc/self/exe` (for `exec`, and for the init): the
  kernel runs the interpreter of the script, /proc/self/exe, which is whatever
  binary the runtime's process runs at execve time; the image supplies what
  that binary needs (a dynamic loader and libc, like any Debian-based image)
  and the binary then runs as the container's program: dumpable, reachable;
* a process of the container looking at every other visible process's
  /proc/<pid>/exe (and environ) while the container is `created` and while
  `exec` sets up a process, with default capabilities and with
  CAP_SYS_PTRACE (which a container is often given).

The naive demonstrations use a copy of the interpreter in the test's
directory as "the runtime's binary" and overwrite that copy; against pyoci
the attacker never writes anything: it reports what it could open (the
device and inode of /proc/self/exe, and whether its permissions would allow
writing), and the test compares that with the host's interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from helpers.ocitest import PYTHON, Bundle, wait_for
from helpers.secutil import Side, describe, found_host_binaries, host_binaries, install, sha256

REAL_PYTHON = os.path.realpath(PYTHON)

# Run by whatever binary /proc/self/exe is when the runtime execs it: if that
# is the host's interpreter, this Python code runs inside the container.
ATTACK_ENTRY = """#!/proc/self/exe
import os
st = os.stat("/proc/self/exe")
print("ATTACK dev=%d:%d ino=%d exe=%s writable=%s" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino,
      os.readlink("/proc/self/exe"), os.access("/proc/self/exe", os.W_OK)), flush=True)
"""

# The naive runtime: non-dumpable (as pyoci's processes are) until it execs the entrypoint.
NAIVE_RUNTIME = ("import ctypes, os, sys; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); "
                 "os.execv(sys.argv[1], sys.argv[1:])")

NAIVE_ENTRY = """#!/proc/self/exe
import os, time
print("ENTRY exe=" + os.readlink("/proc/self/exe"), flush=True)
time.sleep(0.3)
"""


def _interpreter_needs() -> list[str]:
    """What the host's interpreter needs to start in an otherwise empty
    image: its dynamic loader and libraries, and the encodings package."""
    out = subprocess.run(["ldd", REAL_PYTHON], capture_output=True, text=True, check=True).stdout
    files = [tok for line in out.splitlines() for tok in line.split() if tok.startswith("/")]
    enc = subprocess.run([REAL_PYTHON, "-I", "-S", "-c",
                          "import encodings, os; print(os.path.dirname(encodings.__file__))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    files += [os.path.join(enc, f) for f in ("__init__.py", "aliases.py", "utf_8.py")]
    return files


def image_like_debian(b: Bundle) -> None:
    """The rootfs gets the loader, libc and friends (copies), as a Debian-based image has."""
    for f in _interpreter_needs():
        dst = b.rootfs / f.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dst)


def check_image(side: Side, b: Bundle) -> None:
    """The attack has its chance: the host's interpreter does start in this
    image (bound in for a moment, in a mount namespace of its own)."""
    spot = b.rootfs / "tmp" / "host-python"
    spot.touch()
    try:
        p = side.naive('mount --bind "$PY" "$SPOT" && '
                       'chroot "$ROOTFS" /tmp/host-python -I -S -c "print(1 + 1)"', pid=False,
                       env={"PY": REAL_PYTHON, "SPOT": str(spot), "ROOTFS": str(b.rootfs)})
    finally:
        spot.unlink()
    assert p.stdout.strip() == "2", f"the host's interpreter does not start in this image:\n{describe(p)}"


def attack_bundle(side: Side, args: list[str]) -> Bundle:
    """A Debian-like image with the `#!/proc/self/exe` script at /entry, in
    which the host's interpreter is shown to start."""
    b = side.bundle(args)
    image_like_debian(b)
    (b.rootfs / "entry").write_text(ATTACK_ENTRY)
    os.chmod(b.rootfs / "entry", 0o755)
    side.save(b)
    check_image(side, b)
    return b


def attack_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("ATTACK ")]


def hits_host(lines: list[str]) -> list[str]:
    host = host_binaries()
    bad = []
    for ln in lines:
        fields = dict(f.split("=", 1) for f in ln.split()[1:])
        maj, mnr = (int(x) for x in fields["dev"].split(":"))
        if (os.makedev(maj, mnr), int(fields["ino"])) in host:
            bad.append(ln)
    return bad


def naive_overwrite(side: Side, probe: Path) -> None:
    """The unprotected path: a runtime that is a Python interpreter (a copy,
    made here) drops its capabilities, makes itself non-dumpable and
    execve()s a `#!/proc/self/exe` entrypoint in a new pid namespace.  The
    kernel runs the runtime's binary again, now as the container's program;
    the container's other process (no capabilities at all) opens its
    /proc/<pid>/exe, waits until nothing executes it and writes over it."""
    d = side.workdir("naive")
    runtime = d / "runtime-python"
    shutil.copy2(REAL_PYTHON, runtime)
    entry = d / "entry"
    entry.write_text(NAIVE_ENTRY)
    os.chmod(entry, 0o755)
    for p in (runtime, entry):
        side.chown(p)
    st = os.stat(runtime)
    before = sha256(runtime)
    host_before = sha256(REAL_PYTHON)
    script = """
"$PROBE" hunt -d -t 4000 -w "$TARGET" > "$OUT" &
sleep 0.1
setpriv --bounding-set=-all --inh-caps=-all "$RUNTIME" -I -S -c "$NAIVE_RUNTIME" "$ENTRY"
wait
cat "$OUT"
"""
    p = side.naive(script, env={"PROBE": str(probe), "RUNTIME": str(runtime), "ENTRY": str(entry),
                                "OUT": str(d / "hunt.out"), "NAIVE_RUNTIME": NAIVE_RUNTIME,
                                "TARGET": f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}:{st.st_ino}"})
    assert f"ENTRY exe={runtime}" in p.stdout, describe(p)
    assert "OVERWROTE" in p.stdout, describe(p)
    assert sha256(runtime) != before, describe(p)
    assert (runtime.read_bytes()[:18]) == b"PWNED-BY-CONTAINER"
    assert sha256(REAL_PYTHON) == host_before
    runtime.unlink()


def test_exec_entrypoint_proc_self_exe(side: Side, probe: Path) -> None:
    """`exec` of an entrypoint `#!/proc/self/exe` must not run the host's interpreter."""
    naive_overwrite(side, probe)

    b = attack_bundle(side, ["sleep", "30"])
    before = sha256(REAL_PYTHON)
    cid = side.oci.cid()
    side.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    try:
        r = side.pyoci("exec", cid, "/entry")
    finally:
        side.pyoci("delete", "--force", cid).ok()
    assert sha256(REAL_PYTHON) == before
    assert not hits_host(attack_lines(r.stdout)), (
        f"`pyoci exec` ran the host's interpreter {REAL_PYTHON} as the container's program, "
        f"with /proc/self/exe open to it:\n{r}")


def test_init_entrypoint_proc_self_exe(side: Side, probe: Path) -> None:
    """The container's own entrypoint `#!/proc/self/exe` (create/start) likewise."""
    naive_overwrite(side, probe)

    b = attack_bundle(side, ["/entry"])
    before = sha256(REAL_PYTHON)
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert sha256(REAL_PYTHON) == before
    assert not hits_host(attack_lines(r.stdout)), (
        f"the container's init ran the host's interpreter {REAL_PYTHON} as its program, "
        f"with /proc/self/exe open to it:\n{r}")


PTRACE = "CAP_SYS_PTRACE"


@pytest.mark.parametrize("caps", ["default-caps", "cap-sys-ptrace"])
def test_runtime_processes_out_of_reach(side: Side, probe: Path, caps: str) -> None:
    """While the container is `created` (its init is a fork of pyoci) and
    while `exec` sets up a process, no process of the container may open a
    runtime process's /proc/<pid>/exe or read its environment (the caller's)."""
    ptrace = caps == "cap-sys-ptrace"
    marker = f"PYOCI_SEC_MARKER={uuid.uuid4().hex}"

    # The unprotected path: a runtime process (the interpreter copy) waiting
    # in the container's pid namespace with the caller's environment.
    # Without CAP_SYS_PTRACE it has dropped its capabilities and is dumpable
    # (nothing more was done); with it, it even is non-dumpable and keeps
    # every capability: CAP_SYS_PTRACE overrides both.
    d = side.workdir("naive")
    runtime = d / "runtime-python"
    shutil.copy2(REAL_PYTHON, runtime)
    side.chown(runtime)
    wrap = "" if ptrace else "setpriv --bounding-set=-all --inh-caps=-all"
    nondumpable = "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); " if ptrace else ""
    script = f"""
env "$MARKER" {wrap} "$RUNTIME" -I -S -c 'import ctypes, time; {nondumpable}time.sleep(0.5)' &
sleep 0.2
"$PROBE" hunt -d {"-p" if ptrace else ""} -e "$MARKER"
wait
"""
    p = side.naive(script, env={"PROBE": str(probe), "RUNTIME": str(runtime), "MARKER": marker})
    st = os.stat(runtime)
    assert f"dev={os.major(st.st_dev)}:{os.minor(st.st_dev)} ino={st.st_ino} exe={runtime}" in p.stdout, \
        describe(p)
    assert "ENVLEAK" in p.stdout, describe(p)
    runtime.unlink()

    # pyoci: the init itself hunts once started, while `exec`s come and go;
    # before that, a hunter exec'd into the created container looks at the init.
    b = side.bundle(["/bin/probe", "hunt", "-t", "600", "-e", marker])
    install(probe, b.rootfs)
    if ptrace:
        for kind in ("bounding", "effective", "permitted"):
            b.process["capabilities"][kind].append(PTRACE)
    side.save(b)
    cid = side.oci.cid()
    env = dict([marker.split("=", 1)])
    outdir = side.workdir("hunt")
    init_out = outdir / "init.out"
    notes = []
    side.pyoci("create", "--bundle", str(b.path), cid, env=env, stdout=init_out).ok()
    try:
        r = side.pyoci("exec", cid, "/bin/probe", "hunt", "-e", marker, env=env)
        if r.rc != 0:
            notes.append(f"(exec into the created container was refused: {r.stderr.strip()})")
        side.pyoci("start", cid, env=env).ok()
        for _ in range(3):
            side.pyoci("exec", cid, "true", env=env).ok()
        wait_for(lambda: "DONE" in init_out.read_text(), what="the hunter to finish")
    finally:
        side.pyoci("delete", "--force", cid).ok()
    seen = r.stdout + init_out.read_text()
    leaks = found_host_binaries(seen) + [ln for ln in seen.splitlines() if ln.startswith("ENVLEAK")]
    assert not leaks, (f"a process of the container ({caps}) reached a pyoci process: its "
                       f"/proc/<pid>/exe is the host's interpreter, or its environ is the caller's:\n"
                       + "\n".join(leaks) + f"\n--- hunter output:\n{seen}" + "\n".join(notes))
