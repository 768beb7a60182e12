"""Every wait on the container's init is bounded (issue 12, item 16): the
parent's reads of the sync socket time out naming the sync point."""

from __future__ import annotations

import os
import time

import pytest

from pyoci.errors import ChildError
from pyoci.native import spawn


def test_recv_times_out_naming_the_step() -> None:
    a, b = spawn.socketpair()
    try:
        t0 = time.monotonic()
        with pytest.raises(ChildError, match=r"timed out after 0.2s waiting for the container's init at "
                                             r"sync 2 \(CHILD_PID\)"):
            spawn.recv(a, 0.2, "sync 2 (CHILD_PID)")
        assert 0.15 < time.monotonic() - t0 < 2
    finally:
        os.close(a)
        os.close(b)


def test_recv_returns_what_came_in_time_and_eof() -> None:
    a, b = spawn.socketpair()
    try:
        spawn.send(b, 7, 1234)
        msg = spawn.recv(a, 5, "sync 4 (READY)")
        assert msg is not None and msg.type == 7 and msg.pid == 1234
        os.close(b)
        b = -1
        assert spawn.recv(a, 5, "sync 4 (READY)") is None     # EOF is an answer, not a timeout
    finally:
        os.close(a)
        if b >= 0:
            os.close(b)


@pytest.mark.parametrize("value,want", [("", spawn.SYNC_TIMEOUT), ("2", 2.0), ("0.5", 0.5),
                                        ("abc", spawn.SYNC_TIMEOUT), ("-1", spawn.SYNC_TIMEOUT),
                                        ("0", spawn.SYNC_TIMEOUT), ("1e9", spawn.SYNC_TIMEOUT),
                                        ("nan", spawn.SYNC_TIMEOUT)])
def test_sync_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, want: float) -> None:
    monkeypatch.setenv("PYOCI_SYNC_TIMEOUT", value)
    assert spawn.sync_timeout() == want
