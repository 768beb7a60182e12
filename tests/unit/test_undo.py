"""The undo stack create and exec register cleanups on (pyoci.lifecycle.undo.Undo)."""

from __future__ import annotations

import pytest

from pyoci.lifecycle.undo import Undo


def test_unwinds_newest_first_once() -> None:
    done: list[str] = []
    u = Undo()
    for name in ("state dir", "cgroups", "init"):
        u.push(name, lambda name=name: done.append(name))
    assert u.names() == ["init", "cgroups", "state dir"]
    u.unwind()
    assert done == ["init", "cgroups", "state dir"]
    u.unwind()
    assert done == ["init", "cgroups", "state dir"] and u.names() == []


def test_discard_undoes_nothing() -> None:
    done: list[str] = []
    u = Undo()
    u.push("a", lambda: done.append("a"))
    u.discard()
    u.unwind()
    assert done == []


def test_a_failing_action_stops_the_unwinding() -> None:
    """As the hand-written cleanup it replaced: the error propagates, the
    older actions are left."""
    done: list[str] = []
    u = Undo()
    u.push("older", lambda: done.append("older"))

    def boom() -> None:
        raise OSError("no")

    u.push("fails", boom)
    u.push("newer", lambda: done.append("newer"))
    with pytest.raises(OSError):
        u.unwind()
    assert done == ["newer"] and u.names() == ["older"]


def test_create_and_exec_paths_do_not_import_contextlib() -> None:
    """Why it is not contextlib.ExitStack (tests/unit/test_import_cost.py has the full rule)."""
    import subprocess
    import sys

    code = ("import sys; import pyoci.lifecycle.create, pyoci.lifecycle.exec_; "
            "print(sorted(m for m in ('contextlib', 'functools', 'collections') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(p for p in sys.path if p)})
    assert out.stdout.strip() == "[]", out
