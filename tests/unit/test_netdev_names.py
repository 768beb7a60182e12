"""linux.netDevices names: what the kernel's dev_valid_name accepts, checked
before anything reaches netlink; and the template matching of the mover."""

from __future__ import annotations

import pytest

from pyoci.linux.netdev import _template_match, field
from pyoci.spec.checks import ifname_problem


@pytest.mark.parametrize("name", ["eth0", "a", "x" * 15, "ctr_eth-0.1", "é" * 7, "@weird+name"])
def test_valid_names(name: str) -> None:
    assert ifname_problem(name) is None


@pytest.mark.parametrize("name,why", [
    ("", "non-empty"), ("x" * 16, "at most 15"), ("é" * 8, "16 bytes"), (".", ". or .."),
    ("..", ". or .."), ("a/b", "'/'"), ("a:b", "':'"), ("a b", "whitespace"), ("a\tb", "whitespace"),
    ("a\nb", "whitespace"), ("a\u00a0", "whitespace"), ("a\0b", "NUL"), ("eth%d", "'%'"),
])
def test_invalid_names(name: str, why: str) -> None:
    problem = ifname_problem(name)
    assert problem is not None and why in problem, problem


@pytest.mark.parametrize("name,ok", [("eth%d", True), ("%d", True), ("a%db", True), ("a%d%d", False),
                                     ("a%s", False), ("a%", False), ("x" * 14 + "%d", False)])
def test_templates(name: str, ok: bool) -> None:
    assert (ifname_problem(name, template=True) is None) == ok


def test_template_match() -> None:
    assert _template_match("eth%d", "eth12") and not _template_match("eth%d", "eth")
    assert _template_match("a%db", "a0b") and not _template_match("a%db", "a0c")
    assert _template_match("eth0", "eth0") and not _template_match("eth0", "eth1")


def test_field_names_the_device() -> None:
    assert field("eth9") == "$.linux.netDevices.eth9"
    assert field("eth-9.1") == "$.linux.netDevices['eth-9.1']"
