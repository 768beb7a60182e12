"""Image builds: ``podman build`` and ``buildah bud`` with ``--runtime
<pyoci>`` (and runc, the control), root and rootless (issue 15 item 12).

Buildah (which ``podman build`` embeds) runs every RUN step as its own OCI
container (create/start/state/delete, ``--isolation oci``), with its default
capabilities in the ambient set and an empty inheritable set: before pyoci
skipped ambient capabilities the kernel refuses, every RUN step failed.  The
Containerfile is FROM the suite's local busybox image (no registry here);
``--no-cache`` so that both runtimes really run every step, ``--network
none`` (no slirp4netns here).

Besides the ``pod`` fixture's checks (conftest.py: no container, runtime
state, mount or process left), every test checks that the build left no
Buildah container (``podman ps -a --external``, ``buildah containers``), no
state dir of a ``buildah-*`` container, no ``buildah-*`` cgroup and no
Buildah bundle directory in /var/tmp.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from helpers.e2e import Podman, explain

from tools.podman import DISTRO_CAPS, PodmanEnv

BUILDAH = shutil.which("buildah") or "/usr/bin/buildah"

# capability numbers (linux/capability.h) of the conf's default_capabilities
CAP_NUMBERS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6,
               "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "SYS_CHROOT": 18, "SETFCAP": 31}
DEFAULT_CAPS = sum(1 << CAP_NUMBERS[c] for c in DISTRO_CAPS)

CONTAINERFILE = """\
FROM {image}
RUN echo a > /a
RUN cat /a && id -u
RUN grep ^Cap /proc/self/status
RUN mkdir /d && echo b > /d/b && test "$(cat /a /d/b)" = "$(printf 'a\\nb')"
"""

FAILING = """\
FROM {image}
RUN echo first step
RUN echo on stderr >&2; exit 3
RUN echo never
"""

MISSING = """\
FROM {image}
RUN ["/nosuch", "arg"]
"""


@pytest.fixture(params=["root", "rootless"])
def pod(request: pytest.FixtureRequest, runtime: tuple[str, str]) -> Iterator[Podman]:
    # root_podman or rootless_podman, bound to ``runtime`` (pyoci, runc)
    p: Podman = request.getfixturevalue(f"{request.param}_podman")
    before = _leftovers()
    yield p
    problems = [f"{kind}: {x}" for kind, xs in _leftovers().items()
                for x in sorted(xs - before.get(kind, set()))]
    out = p.env.run("ps", "-a", "--external", "--format", "{{.ID}} {{.Names}}").stdout.strip()
    problems += [f"podman ps -a --external: {line}" for line in out.splitlines()]
    if os.path.exists(BUILDAH):
        r = _buildah(p.env, "containers", "--noheading")
        problems += [f"buildah containers: {line}" for line in r.stdout.strip().splitlines()]
    if problems:
        pytest.fail("left behind by the build:\n  " + "\n  ".join(problems), pytrace=False)


def _leftovers() -> dict[str, set[str]]:
    """Things a Buildah RUN container may leave: its runtime state dir (root;
    the rootless ones are in the pod fixture's check), its cgroups, its
    bundle directory."""
    cgroups: set[str] = set()
    for ctrl in glob.glob("/sys/fs/cgroup/*"):
        for dirpath, dirnames, _ in os.walk(ctrl):
            if dirpath.count("/") - ctrl.count("/") >= 3:
                dirnames[:] = []
            cgroups.update(os.path.join(dirpath, d) for d in dirnames if d.startswith("buildah-"))
    return {"state dir": set(glob.glob("/run/pyoci/buildah-*") + glob.glob("/run/runc/buildah-*")),
            "cgroup": cgroups, "bundle": set(glob.glob("/var/tmp/buildah[0-9]*"))}


def _buildah(env: PodmanEnv, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """buildah over the same storage as ``env``'s podman (its conf, its user)."""
    argv = [BUILDAH, "--root", env.storage_root, "--runroot", env.runroot, "--storage-driver", "vfs", *args]
    if env.rootless:
        argv = ["runuser", "-u", env.user or "", "--", "env", "-i",
                *(f"{k}={v}" for k, v in env.env().items()), *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env.env(), cwd="/",
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def context(pod: Podman) -> Iterator[str]:
    """A build context directory the (rootless) builder can read."""
    d = tempfile.mkdtemp(prefix="build-", dir=pod.env.base)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def containerfile(context: str, text: str, image: str) -> str:
    path = os.path.join(context, "Containerfile")
    with open(path, "w") as f:
        f.write(text.format(image=image))
    os.chmod(path, 0o644)
    return path


def check_steps(out: str) -> None:
    """The RUN steps' output: the file of one step is in the next, root
    inside, and the default capabilities (ambient ones the kernel refuses
    without an inheritable set are skipped, as with runc)."""
    lines = out.splitlines()
    assert "a" in lines and "0" in lines, out
    caps = {k: int(v, 16) for k, v in (ln.split(":\t") for ln in lines if ln.startswith("Cap"))}
    assert caps == {"CapInh": 0, "CapPrm": DEFAULT_CAPS, "CapEff": DEFAULT_CAPS, "CapBnd": DEFAULT_CAPS,
                    "CapAmb": 0}, out


def test_podman_build_runs_every_step(pod: Podman, context: str) -> None:
    tag = f"localhost/pyoci-build-{pod.name}"
    cf = containerfile(context, CONTAINERFILE, pod.image)
    r = pod("build", "--no-cache", "--network", "none", "-t", tag, "-f", cf, context, timeout=120)
    try:
        assert r.returncode == 0, explain(r)
        check_steps(r.stdout)
        out = pod.ok("run", "--network=none", "--rm", tag, "cat", "/a", "/d/b")
        assert out.split() == ["a", "b"], out
    finally:
        pod("rmi", "-f", tag)


def test_podman_build_failing_step(pod: Podman, context: str) -> None:
    """A RUN step that exits 3 fails the build at that step with its status;
    the steps after it never run, nothing is left."""
    cf = containerfile(context, FAILING, pod.image)
    r = pod("build", "--no-cache", "--network", "none", "-f", cf, context, timeout=120)
    assert r.returncode != 0, explain(r)
    assert "first step" in r.stdout and "never" not in r.stdout, explain(r)
    assert "on stderr" in r.stderr, explain(r)
    assert 'building at STEP "RUN echo on stderr >&2; exit 3": while running runtime: exit status 3' \
        in r.stderr, explain(r)


def test_podman_build_runtime_error_reaches_the_user(pod: Podman, context: str) -> None:
    """A RUN step the runtime cannot start: the runtime's own error line is
    in podman's message."""
    cf = containerfile(context, MISSING, pod.image)
    r = pod("build", "--no-cache", "--network", "none", "-f", cf, context, timeout=120)
    assert r.returncode != 0, explain(r)
    assert 'building at STEP "RUN /nosuch arg"' in r.stderr, explain(r)
    assert "/nosuch" in r.stderr and "no such file or directory" in r.stderr, explain(r)
    if pod.name == "pyoci":
        assert "pyoci: find the program ($.process.args[0]): /nosuch: no such file or directory" \
            in r.stderr, explain(r)


def test_buildah_bud(pod: Podman, context: str) -> None:
    if not os.path.exists(BUILDAH):
        pytest.skip("buildah not installed (apt-get install buildah)")
    tag = f"localhost/pyoci-bud-{pod.name}"
    cf = containerfile(context, CONTAINERFILE, pod.image)
    r = _buildah(pod.env, "bud", "--runtime", pod.runtime, "--isolation", "oci", "--no-cache",
                 "--network", "none", "-t", tag, "-f", cf, context, timeout=120)
    try:
        assert r.returncode == 0, explain(r)
        check_steps(r.stdout)
        cf = containerfile(context, FAILING, pod.image)
        r = _buildah(pod.env, "bud", "--runtime", pod.runtime, "--isolation", "oci", "--no-cache",
                     "--network", "none", "-f", cf, context, timeout=120)
        assert r.returncode != 0 and "exit status 3" in r.stderr, explain(r)
    finally:
        _buildah(pod.env, "rmi", "-f", tag)
