"""The fixtures shared by tests/integration and tests/security (registered
for every test directory by tests/conftest.py).

``oci`` gives each test a private directory under /tmp (mode 0755 so a user
namespace's root can reach its bundles), its own ``--root``, and a token that
marks every process it starts.  After the test it asserts that nothing
leaked: no process of the test, no mount mentioning its directory, no
container directory under its state roots, no cgroup directory of its
containers (see ocitest.py).  ``test_user``
and ``users`` are in users.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from helpers import ocitest
from helpers.users import test_user, users

__all__ = ["oci", "test_user", "users"]


@pytest.fixture
def oci(request: pytest.FixtureRequest) -> Iterator[ocitest.Env]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    env = ocitest.Env(request.node.name)
    yield env
    problems = ocitest.check_leaks(env)
    for name in env.netns:
        os.system(f"ip netns delete {name} >/dev/null 2>&1")
    if problems:
        ocitest.clean_up_after_leak(env)
        listing = "\n  ".join(problems)
        pytest.fail(f"leaked after the test (directory kept: {env.tmp}):\n  {listing}",
                    pytrace=False)
    # Kept for a look when the test failed; a passed or skipped one leaves nothing.
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and not rep.failed:
        ocitest.remove_tree(env.tmp)
