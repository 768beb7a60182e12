"""The state record checks (pyoci.lifecycle.store): what a damaged
state.json or pid record reads as.  The real files are exercised in
tests/integration/test_bad_state.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pyoci.lifecycle import store

GOOD: dict[str, Any] = {
    "ociVersion": "1.2.0", "id": "c", "pid": 1234, "pid_start": 5678, "bundle": "/b", "rootfs": "/b/rootfs",
    "created": "2026-01-01T00:00:00Z", "owner": 0, "annotations": {"a": "b"},
    "hooks": {"poststop": [{"path": "/bin/true"}]}, "pid_ns_own": True, "own_mount_ns": True,
    "process": {"args": ["sh"]}, "seccomp": None, "personality": None, "memoryPolicy": None,
    "new_keyring": True, "cgroup_paths": {"": "/sys/fs/cgroup/unified/c"},
    "cgroups_created": ["/sys/fs/cgroup/unified/c"], "freezer": None, "unknown-later-field": [1],
}


def test_a_sound_record_passes_whole() -> None:
    clean, problems = store.check_state(GOOD)
    assert problems == [] and clean == GOOD


@pytest.mark.parametrize("key, value, words", [
    ("pid", "1234", "pid is a string, expected an integer"),
    ("pid", True, "pid is a boolean"),
    ("pid", 0, "out of range"),
    ("pid", 1 << 40, "out of range"),
    ("pid_start", "5678", "pid_start is a string"),
    ("pid_start", None, "pid_start is null"),
    ("bundle", 5, "bundle is an integer"),
    ("rootfs", "relative/path", "rootfs is not an absolute path"),
    ("cgroup_paths", {"": "../../x"}, "cgroup_paths"),
    ("cgroups_created", 7, "cgroups_created is an integer"),
    ("cgroups_created", ["/sys/fs/cgroup/../../etc"], "cgroups_created"),
    ("hooks", {"poststop": [{"args": []}]}, "hooks"),
    ("pid_ns_own", 1, "pid_ns_own is an integer, expected a boolean"),
    ("annotations", {"a": 1}, "annotations"),
    ("freezer", "/sys/fs/cgroup/x\0y", "freezer"),
])
def test_a_bad_field_is_named_and_dropped(key: str, value: Any, words: str) -> None:
    clean, problems = store.check_state({**GOOD, key: value})
    assert len(problems) == 1 and words in problems[0], problems
    assert key not in clean
    assert all(clean[k] == v for k, v in GOOD.items() if k != key)


@pytest.mark.parametrize("key", ["pid", "pid_start", "bundle"])
def test_required_fields(key: str) -> None:
    _, problems = store.check_state({k: v for k, v in GOOD.items() if k != key})
    assert problems == [f"{key} is missing"]


@pytest.mark.parametrize("data", [[], "x", 5, None])
def test_not_an_object(data: Any) -> None:
    clean, problems = store.check_state(data)
    assert clean == {} and problems and "expected a JSON object" in problems[0]


@pytest.mark.parametrize("content, expected", [
    (b"123 456", (123, 456)),
    (b"123 456\n", (123, 456)),
    (b"123", None),                 # no start time: never trusted
    (b"123 0", None),
    (b"0 456", None),
    (b"-1 456", None),
    (b"abc def", None),
    (b"", None),
    (b"99999999999999999999999 1", None),
    (b"123 456 789", None),
])
def test_pid_record(tmp_path: Path, content: bytes, expected: tuple[int, int] | None) -> None:
    (tmp_path / "rec").write_bytes(content)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert store.read_pid_record(fd, "rec") == expected
        assert store.read_pid_record(fd, "missing") is None
    finally:
        os.close(fd)


def test_pid_record_of_self_matches(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        store.write_atomic(fd, "rec", store.pid_record(os.getpid()))
        rec = store.read_pid_record(fd, "rec")
        assert rec is not None and rec[0] == os.getpid()
        from pyoci.linux import proc

        assert proc.is_alive(*rec) and not proc.is_alive(rec[0], rec[1] + 1)
        assert os.listdir(tmp_path) == ["rec"]      # no temporary file left
    finally:
        os.close(fd)
