"""Setup of the integration tests (their fixtures live in tests/helpers/fixtures.py).

``oci`` gives each test a private directory under /tmp (mode 0755 so a user
namespace's root can reach its bundles), its own ``--root``, and a token that
marks every process it starts.  After the test it asserts that nothing
leaked: no process of the test, no mount mentioning its directory, no
container directory under its state roots, no cgroup directory of its
containers (see tests/helpers/ocitest.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests need root (real namespaces and mounts)")
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(skip)
