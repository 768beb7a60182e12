"""Fixtures of the attack suite (tests/security).

The integration tests' machinery is reused, not copied: ``oci`` (a private
directory, a state root, a token, the leak check after the test),
``test_user`` and ``Rootless`` come from tests/helpers/.  Added here:

* ``side``: each test runs once as root and once rootless (as the test user,
  with a user namespace), through helpers.secutil.Side;
* ``probe``: probe.c built static (the attacker's tool: the test rootfs has
  no libc) with gcc, once per session, in a directory of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import Env
from helpers.secutil import Side
from helpers.users import Rootless

HERE = Path(__file__).resolve().parent

@pytest.fixture(params=["root", "rootless"])
def side(request: pytest.FixtureRequest, oci: Env) -> Side:
    if request.param == "rootless":
        user = request.getfixturevalue("test_user")
        return Side(oci, Rootless(oci, user))
    return Side(oci)


@pytest.fixture(scope="session")
def probe() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc (and libc6-dev for a static binary) to build the attacker's probe")
    d = Path(tempfile.mkdtemp(prefix="pyoci-sec-probe-", dir="/tmp"))
    os.chmod(d, 0o755)
    out = d / "probe"
    r = subprocess.run(["gcc", "-static", "-no-pie", "-O2", "-o", str(out), str(HERE / "probe.c")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(d, ignore_errors=True)
        pytest.fail(f"cannot build probe.c statically:\n{r.stderr}")
    try:
        yield out
    finally:
        shutil.rmtree(d, ignore_errors=True)

