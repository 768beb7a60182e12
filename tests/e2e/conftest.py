"""End-to-end tests: the real Podman 4.3 (+ conmon) driving pyoci; and
containerd, the Kubernetes CRI and Docker (test_containerd.py, test_cri.py,
test_docker.py: their session fixtures are in the "containerd, CRI and
Docker" part below, their leak checks in tests/helpers/e2e_engines.py, the
daemons in tools/engines.py).  What the tests share besides fixtures (the
runtimes, ``Podman``, ``explain``, the leak checks) is in the helper
package: tests/helpers/e2e.py, e2e_flows.py (the Podman flows of the root
and rootless tests) and e2e_engines.py.

Every test runs once with ``--runtime <pyoci launcher>`` and once with
``--runtime <runc>``: the suite checks Podman's real behaviour, so a test that
fails with runc is a wrong test (or an environment problem), while a failure
with pyoci only is a pyoci bug.

Needs root, podman, conmon and a static busybox (busybox-static); skips
cleanly otherwise.  runc missing only skips the runc half.  Rootless tests
also need newuidmap/newgidmap; they run as the user ``pyoci-e2e`` (or
$PYOCI_E2E_USER), created with ``useradd -m`` (+ a 65536-id /etc/subuid and
/etc/subgid range) when missing.

Isolation (tools/podman.py): one directory /tmp/pyoci-e2e-XXXX per
session (removed at the end; PYOCI_E2E_KEEP=1 keeps it) holding two Podman
setups, ``root/`` and ``rootless/`` (vfs storage, run root, tmpdir, events
log, containers.conf via CONTAINERS_CONF and, for rootless, XDG_RUNTIME_DIR
and HOME); the machine's own Podman storage is never touched.  The busybox
image is imported once per setup as localhost/pyoci-busybox.  Networking is
``--network=none`` (/dev/net/tun is 0600 on the test machine).

After every test the ``pod`` fixture asserts that nothing is left: no
container in ``podman ps -a``, no runtime state dir (/run/pyoci/<id>,
/run/runc/<id>; rootless: $XDG_RUNTIME_DIR/{pyoci,runc}/*), no container
cgroup, no mount under the session directory (host mount ns and, rootless,
the pause process's), no live process of ours (conmon, runtime, container
processes, podman cleanup); the rootless pause process is allowed until the
session ends.  Podman's cleanup is asynchronous (conmon's exit command), so
the check waits up to 10 s.  A failing podman call's message shows the
command line and podman's stdout/stderr (which embed the runtime's error);
to look at oci-log/ctr.log of a live container, reproduce by hand with
``python -m tools.podman``.

Environment notes (observed with runc too, so the tests account for them):
CONTAINERS_CONF hides /usr/share/containers/containers.conf, so the
generated conf repeats Debian's default_capabilities (11 caps) and
default_sysctls; rootless podman re-executes itself inside its user namespace
and only that inner podman proxies SIGINT to the container; Podman 4.3 now
and then exits 1 on a SIGINT without proxying it (test_sig_proxy retries);
``--ulimit`` replaces default_ulimits wholesale (pass nproc too as root).

Running::

    .venv/bin/python -m pytest tests/e2e -q            # ~2-4 minutes
    .venv/bin/python -m pytest tests/e2e -q -k pyoci   # pyoci half only

To reproduce a failing call by hand use ``python -m tools.podman``
(setup / cmd) on a scratch directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.e2e import (
    CTR_NAMESPACE,
    PYOCI,
    RUNC,
    TEST_USER,
    Podman,
    checked_podman,
    engine_cgroup,
    engine_runtimes,
    ensure_user,
    missing_prereq,
    mounts_under,
)

from tools import engines
from tools.podman import PodmanEnv, busybox_tar

HERE = str(Path(__file__).parent)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = {podman: missing_prereq(podman) for podman in (True, False)}
    for item in items:
        if str(item.path).startswith(HERE):
            reason = why[item.path.name.startswith("test_podman")]
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


# -- sessions ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def e2e_base(request: pytest.FixtureRequest) -> Iterator[Path]:
    # (The Podman modules are named test_podman_*: they sort after the
    # containerd, CRI and Docker ones, whose leak checks look at the whole
    # base, before the rootless pause process, which lives until the session
    # ends, exists.)
    base = Path(tempfile.mkdtemp(prefix="pyoci-e2e-", dir="/tmp"))
    os.chmod(base, 0o755)  # the rootless user must traverse it
    busybox_tar(str(base / "busybox.tar"))
    yield base
    if mounts_under(str(base)) or os.environ.get("PYOCI_E2E_KEEP"):
        print(f"\n[e2e] keeping {base} (PYOCI_E2E_KEEP set, or mounts left)")
        return
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def root_env(e2e_base: Path) -> Iterator[PodmanEnv]:
    env = PodmanEnv(str(e2e_base / "root"), pyoci=PYOCI)
    env.setup(str(e2e_base / "busybox.tar"))
    yield env
    env.run("rm", "-a", "-f", "-t", "0", timeout=120)


@pytest.fixture(scope="session")
def rootless_env(e2e_base: Path) -> Iterator[PodmanEnv]:
    if not shutil.which("newuidmap") or not shutil.which("newgidmap"):
        pytest.skip("newuidmap/newgidmap missing (apt-get install uidmap)")
    ensure_user(TEST_USER)
    env = PodmanEnv(str(e2e_base / "rootless"), TEST_USER, pyoci=PYOCI)
    os.makedirs(env.base, exist_ok=True)
    os.chown(env.base, env.uid, env.gid)
    env.setup(str(e2e_base / "busybox.tar"))
    yield env
    env.run("rm", "-a", "-f", "-t", "0", timeout=120)
    pid = env.pause_pid()
    if pid:
        os.kill(pid, signal.SIGKILL)


# -- containerd, CRI and Docker (test_containerd.py, test_cri.py, test_docker.py) ---------


@pytest.fixture(scope="session")
def engine_images(e2e_base: Path) -> dict[str, str]:
    """{ref: archive} of the busybox and pause images (tools.engines),
    from the session's busybox rootfs tarball."""
    return engines.build_images(str(e2e_base / "images"), str(e2e_base / "busybox.tar"))


@pytest.fixture(scope="session")
def containerd(e2e_base: Path, engine_images: dict[str, str]) -> Iterator[engines.Containerd]:
    """One containerd for the session (ctr, CRI and rootful Docker tests):
    CRI runtime handlers pyoci and runc, both images imported into the
    CTR_NAMESPACE and k8s.io namespaces.  At the end every task and
    container left is deleted, containerd is stopped, and the engines' cgroup
    parents are removed."""
    missing = engines.missing_binaries(engines.CONTAINERD, engines.CTR, engines.SHIM)
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install containerd)")
    ctd = engines.Containerd(str(e2e_base / "containerd"), engine_runtimes())
    try:
        ctd.start()
        for ns in (CTR_NAMESPACE, "k8s.io"):
            for tar in engine_images.values():
                ctd.import_image(tar, ns)
        yield ctd
    finally:
        ctd.stop()
        for kind in ("ctr", "cri"):
            engines.remove_cgroups(engine_cgroup(kind))


# -- per test ---------------------------------------------------------------------------


@pytest.fixture(params=["pyoci", "runc"])
def runtime(request: pytest.FixtureRequest) -> tuple[str, str]:
    if request.param == "runc":
        if RUNC is None:
            pytest.skip("runc not installed")
        return "runc", RUNC
    return "pyoci", PYOCI


@pytest.fixture
def root_podman(root_env: PodmanEnv, runtime: tuple[str, str]) -> Iterator[Podman]:
    yield from checked_podman(root_env, runtime)


@pytest.fixture
def rootless_podman(rootless_env: PodmanEnv, runtime: tuple[str, str]) -> Iterator[Podman]:
    yield from checked_podman(rootless_env, runtime)
