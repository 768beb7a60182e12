"""pyoci.linux.names: capability, signal and rlimit tables, parse_signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pyoci.linux.names import CAPABILITIES, RLIMITS, SIGNAL_ALIASES, SIGNALS, parse_signal

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("KILL", 9),
        ("SIGKILL", 9),
        ("sigkill", 9),
        ("kill", 9),
        ("SigTerm", 15),
        ("9", 9),
        ("15", 15),
        ("1", 1),
        ("64", 64),
        ("HUP", 1),
        ("SIGSYS", 31),
        ("WINCH", 28),
        ("SIGRTMIN", 34),
        ("RTMIN+1", 35),
        ("sigrtmin+3", 37),
        ("SIGRTMAX", 64),
        ("RTMAX-1", 63),
        ("SIGRTMAX-30", 34),
        ("IOT", 6),
        ("SIGPOLL", 29),
        ("CLD", 17),
    ],
)
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize(
    "text",
    ["", "SIG", "KILLL", "SIGFOO", "0", "65", "-9", "+9", "9.0", " 9", "KILL "]
    + ["SIGRTMIN+31", "RTMAX-31", "\u0669", "SIGSIGKILL"],
)
def test_parse_signal_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_signal(text)


def test_signal_numbers_match_this_host() -> None:
    if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        pytest.skip("the table is x86_64 Linux")
    for name, number in SIGNALS.items():
        if "+" in name or name in ("SIGRTMIN", "SIGRTMAX"):
            continue
        assert getattr(signal, name) == number, name
    assert signal.SIGRTMAX == SIGNALS["SIGRTMAX"]
    # glibc reserves the first two real-time signals; what is left starts at 34.
    assert signal.SIGRTMIN == SIGNALS["SIGRTMIN"]


def test_signal_table_shape() -> None:
    assert sorted(SIGNALS.values()) == [*range(1, 32), *range(34, 65)]
    assert all(SIGNALS.get(f"SIGRTMIN+{n}") == 34 + n for n in range(1, 30))
    assert set(SIGNAL_ALIASES.values()) <= set(SIGNALS.values())


def test_capabilities() -> None:
    assert sorted(CAPABILITIES.values()) == list(range(41))
    assert CAPABILITIES["CAP_CHOWN"] == 0
    assert CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert all(name.startswith("CAP_") for name in CAPABILITIES)


def test_rlimits() -> None:
    import resource

    assert sorted(RLIMITS.values()) == list(range(16))
    for name, number in RLIMITS.items():
        if hasattr(resource, name):
            assert getattr(resource, name) == number, name


def test_names_imports_nothing() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pyoci.linux.names"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    base = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, check=True
    )

    def modules(stderr: str) -> set[str]:
        return {ln.rsplit("|", 1)[1].strip() for ln in stderr.splitlines() if ln.startswith("import time:")}

    allowed = {"pyoci", "pyoci.linux", "pyoci.linux.names", "__future__"}
    assert modules(proc.stderr) - modules(base.stderr) <= allowed
