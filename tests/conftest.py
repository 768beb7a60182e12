"""Shared pytest setup for pyoci's tests.

Unit tests (tests/unit) run anywhere; integration tests (tests/integration)
drive the real kernel and need root: they skip cleanly otherwise.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

# The fixtures of tests/helpers (tests/ and the repository root are on sys.path
# through pyproject.toml's [tool.pytest.ini_options] pythonpath).
from helpers.fixtures import oci, test_user, users  # noqa: F401


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    # Fixtures look at item.rep_call to know whether the test body passed
    # (integration tests keep their directory for inspection when it failed).
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
