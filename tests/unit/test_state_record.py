"""The state record (pyoci.lifecycle.store: StateRecord): round trip, format versions,
what a damaged state.json or pid record reads as.  The real files are exercised in
tests/integration/test_bad_state.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pyoci import jsonfast
from pyoci.errors import DamagedState, PyociError
from pyoci.lifecycle import store
from pyoci.lifecycle.store import STATE_VERSION, VERSION_KEY, NewerState, StateRecord

GOOD: dict[str, Any] = {
    "ociVersion": "1.2.0", "id": "c", "pid": 1234, "pid_start": 5678, "bundle": "/b", "rootfs": "/b/rootfs",
    "created": "2026-01-01T00:00:00Z", "owner": 0, "annotations": {"a": "b"},
    "hooks": {"poststop": [{"path": "/bin/true"}]}, "pid_ns_own": True, "own_mount_ns": True,
    "mount_ns_new": True,
    "process": {"args": ["sh"]}, "seccomp": None, "personality": None, "memoryPolicy": None,
    "new_keyring": True, "cgroup_paths": {"": "/sys/fs/cgroup/unified/c"},
    "cgroups_created": ["/sys/fs/cgroup/unified/c"], "freezer": None, "unknown-later-field": [1],
}


def _fields(rec: StateRecord) -> dict[str, Any]:
    """The record as JSON, without the version key."""
    out = rec.to_json()
    assert out.pop(VERSION_KEY) == STATE_VERSION
    return out


def test_a_sound_record_passes_whole() -> None:
    rec, problems = StateRecord.from_json(GOOD)
    assert problems == [] and _fields(rec) == GOOD
    assert rec.version == STATE_VERSION
    assert rec.pid == 1234 and rec.pid_start == 5678 and rec.bundle == "/b" and rec.pid_ns_own is True
    assert rec.memory_policy is None and rec.cgroups_created == ["/sys/fs/cgroup/unified/c"]
    assert rec.hook_list("poststop") == [{"path": "/bin/true"}] and rec.hook_list("poststart") == []
    assert all(rec.has(k) for k in GOOD if k != "unknown-later-field")


def test_round_trip_through_json() -> None:
    rec = StateRecord(oci_version="1.2.0", id="c", pid=7, pid_start=9, bundle="/b", rootfs="/b/r",
                      created="2026-01-01T00:00:00Z", owner=1000, annotations={"k": "v"},
                      hooks={"poststop": [{"path": "/x"}]}, pid_ns_own=True, own_mount_ns=False,
                      mount_ns_new=False, process={"args": ["sh"]},
                      seccomp={"defaultAction": "SCMP_ACT_ALLOW"},
                      memory_policy={"mode": "MPOL_BIND"}, new_keyring=False,
                      cgroup_paths={"memory": "/sys/fs/cgroup/memory/c"},
                      cgroups_created=["/sys/fs/cgroup/memory/c"],
                      freezer="/sys/fs/cgroup/freezer/c/freezer.state")
    text = jsonfast.dumps(rec.to_json())
    data = jsonfast.loads(text)
    assert data[VERSION_KEY] == STATE_VERSION
    # runc's keys for what the OCI state has
    assert {"ociVersion", "id", "pid", "bundle", "created", "owner", "annotations"} <= set(data)
    assert "resources" not in data      # written once update sets some
    back, problems = StateRecord.from_json(data)
    assert problems == []
    for attr in StateRecord.__slots__:
        if attr != "loaded":
            assert getattr(back, attr) == getattr(rec, attr), attr
    back.resources.update({"pids": {"limit": 5}})
    again, problems = StateRecord.from_json(jsonfast.loads(jsonfast.dumps(back.to_json())))
    assert problems == [] and again.resources == {"pids": {"limit": 5}}


def test_unknown_keys_are_kept() -> None:
    rec, _ = StateRecord.from_json(GOOD)
    assert rec.extra == {"unknown-later-field": [1]}
    assert rec.to_json()["unknown-later-field"] == [1]


def test_version_1_is_migrated() -> None:
    """A state.json of pyoci before the record (no version key, fewer
    fields) reads as the current version, the missing fields at the
    defaults the old readers used."""
    old = {k: v for k, v in GOOD.items() if k not in ("mount_ns_new", "own_mount_ns", "new_keyring",
                                                      "unknown-later-field")}
    assert VERSION_KEY not in old
    rec, problems = StateRecord.from_json(old)
    assert problems == []
    assert rec.version == STATE_VERSION and rec.to_json()[VERSION_KEY] == STATE_VERSION
    assert rec.own_mount_ns is True and rec.new_keyring is True and rec.mount_ns_new is False
    assert not rec.has("own_mount_ns") and rec.has("pid")
    rec, problems = StateRecord.from_json({**old, VERSION_KEY: 1})
    assert problems == [] and rec.pid == 1234


@pytest.mark.parametrize("version", [STATE_VERSION + 1, 99])
def test_newer_version_is_refused(version: int) -> None:
    with pytest.raises(NewerState, match=f"newer pyoci \\(state format {version}; this one reads up to"):
        StateRecord.from_json({**GOOD, VERSION_KEY: version})


@pytest.mark.parametrize("version", ["2", 0, -1, True, None, 1.5])
def test_bad_version_is_damage(version: object) -> None:
    rec, problems = StateRecord.from_json({**GOOD, VERSION_KEY: version})
    assert len(problems) == 1 and "is not a format version" in problems[0]
    assert not rec.has("pid") and rec.pid == 0


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
    ("memoryPolicy", [], "memoryPolicy is an array, expected an object or null"),
])
def test_a_bad_field_is_named_and_left_at_its_default(key: str, value: Any, words: str) -> None:
    rec, problems = StateRecord.from_json({**GOOD, key: value})
    assert len(problems) == 1 and words in problems[0], problems
    assert not rec.has(key)
    default = StateRecord(oci_version="1.2.0", id="c")
    fields = _fields(rec)
    assert fields.get(key) == _fields(default).get(key)
    assert all(fields[k] == v for k, v in GOOD.items() if k != key)


@pytest.mark.parametrize("key", ["pid", "pid_start", "bundle"])
def test_required_fields(key: str) -> None:
    _, problems = StateRecord.from_json({k: v for k, v in GOOD.items() if k != key})
    assert problems == [f"{key} is missing"]


@pytest.mark.parametrize("data", [[], "x", 5, None])
def test_not_an_object(data: Any) -> None:
    rec, problems = StateRecord.from_json(data)
    assert problems and "expected a JSON object" in problems[0]
    assert rec.loaded == frozenset() and rec.pid == 0 and rec.pid_start is None


def _container_dir(tmp_path: Path, data: object) -> Path:
    d = tmp_path / "c"
    d.mkdir()
    (d / store.STATE_FILE).write_bytes(jsonfast.dumps(data).encode())
    return d


def test_store_reads_and_saves_the_record(tmp_path: Path) -> None:
    _container_dir(tmp_path, {k: v for k, v in GOOD.items() if k != "unknown-later-field"})
    with store.open_container(str(tmp_path), "c") as c:
        assert c.state is not None and c.damage is None and c.pid == 1234
        c.state.resources["pids"] = {"limit": 3}
        c.save(c.state)
    saved = jsonfast.loads((tmp_path / "c" / store.STATE_FILE).read_bytes())
    assert saved[VERSION_KEY] == STATE_VERSION and saved["resources"] == {"pids": {"limit": 3}}


def test_store_refuses_a_newer_format(tmp_path: Path) -> None:
    _container_dir(tmp_path, {**GOOD, VERSION_KEY: STATE_VERSION + 1})
    for damaged_ok in (False, True):
        with pytest.raises(PyociError, match="was written by a newer pyoci") as e:
            store.open_container(str(tmp_path), "c", damaged_ok=damaged_ok)
        assert not isinstance(e.value, DamagedState)
        assert e.value.hint and "the pyoci that created" in e.value.hint


def test_store_names_damage(tmp_path: Path) -> None:
    _container_dir(tmp_path, {**GOOD, "pid": "x"})
    with pytest.raises(DamagedState, match="pid is a string"):
        store.open_container(str(tmp_path), "c")
    with store.open_container(str(tmp_path), "c", damaged_ok=True) as c:
        assert c.damage and c.state is not None and not c.state.has("pid") and c.state.has("pid_start")


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
