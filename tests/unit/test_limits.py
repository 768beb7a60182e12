"""Hostile config input refused before it reaches C (issue 12 items 8, 11, 12):
bounded reads, NUL bytes and lone surrogates anywhere, numbers in the range
their C type and syscall can take.  Each refusal is a ConfigError (or, for
the file itself, a PyociError) naming the JSON path or the file."""

from __future__ import annotations

import copy
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from pyoci import jsonfast
from pyoci.cli.spec import default_spec
from pyoci.errors import ConfigError, PyociError
from pyoci.spec import limits
from pyoci.spec.load import load_config, load_process, load_resources, parse_config


def base() -> dict[str, Any]:
    cfg = default_spec(False, 0, 0, ["sh"], terminal=False)
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/true", "args": ["true"], "env": ["A=B"]}]}
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}
    cfg["annotations"] = {"a": "b"}
    return cfg


def refused(cfg: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(jsonfast.dumps(cfg))
    return info.value


def test_base_config_is_accepted() -> None:
    parse_config(jsonfast.dumps(base()))


# -- NUL bytes and lone surrogates ------------------------------------------------------

# (a function putting the bad string into the config, the JSON path it must name)
PLACES = [
    (lambda c, s: c["linux"]["maskedPaths"].__setitem__(0, "/etc/passwd" + s), "$.linux.maskedPaths[0]"),
    (lambda c, s: c["linux"]["readonlyPaths"].__setitem__(1, "/proc/sys" + s), "$.linux.readonlyPaths[1]"),
    (lambda c, s: c["mounts"][0].__setitem__("source", "proc" + s), "$.mounts[0].source"),
    (lambda c, s: c["mounts"][1].__setitem__("destination", "/dev" + s), "$.mounts[1].destination"),
    (lambda c, s: c["mounts"][1]["options"].__setitem__(0, "nosuid" + s), "$.mounts[1].options[0]"),
    (lambda c, s: c["mounts"][0].__setitem__("type", "proc" + s), "$.mounts[0].type"),
    (lambda c, s: c["process"]["env"].__setitem__(0, "PATH=/bin" + s), "$.process.env[0]"),
    (lambda c, s: c["process"]["args"].__setitem__(0, "sh" + s), "$.process.args[0]"),
    (lambda c, s: c["process"].__setitem__("cwd", "/" + s), "$.process.cwd"),
    (lambda c, s: c["hooks"]["createRuntime"][0].__setitem__("path", "/bin/true" + s),
     "$.hooks.createRuntime[0].path"),
    (lambda c, s: c["hooks"]["createRuntime"][0]["args"].__setitem__(0, "true" + s),
     "$.hooks.createRuntime[0].args[0]"),
    (lambda c, s: c["hooks"]["createRuntime"][0]["env"].__setitem__(0, "A=B" + s),
     "$.hooks.createRuntime[0].env[0]"),
    (lambda c, s: c.__setitem__("hostname", "h" + s), "$.hostname"),
    (lambda c, s: c["root"].__setitem__("path", "rootfs" + s), "$.root.path"),
    (lambda c, s: c["linux"]["seccomp"]["syscalls"][0]["names"].__setitem__(0, "getpid" + s),
     "$.linux.seccomp.syscalls[0].names[0]"),
    (lambda c, s: c["linux"]["sysctl"].__setitem__("net.ipv4.ip_forward", "1" + s),
     "$.linux.sysctl['net.ipv4.ip_forward']"),
    (lambda c, s: c["linux"].__setitem__("cgroupsPath", "/a" + s + "b"), "$.linux.cgroupsPath"),
    (lambda c, s: c["annotations"].__setitem__("a", s), "$.annotations.a"),
]


@pytest.mark.parametrize("bad", ["\x00", "\x00xyz", "\ud800", "x\udfff", "\udcff"])
@pytest.mark.parametrize(("put", "field"), PLACES, ids=[p[1] for p in PLACES])
def test_bad_string_refused_naming_the_field(put: Any, field: str, bad: str) -> None:
    cfg = base()
    put(cfg, bad)
    err = refused(cfg)
    expect = field.replace("['net.ipv4.ip_forward']", '["net.ipv4.ip_forward"]')
    assert err.field == expect, str(err)
    assert ("NUL" in str(err)) == ("\x00" in bad)
    assert str(err).isascii() and "\x00" not in str(err)


@pytest.mark.parametrize("key", ["k\x00", "\ud800", "net.ipv4.ip_forward\x00x"])
def test_bad_key_refused(key: str) -> None:
    cfg = base()
    cfg["linux"]["sysctl"] = {key: "1"}
    err = refused(cfg)
    assert err.field is not None and err.field.startswith("$.linux.sysctl[")
    assert "the key" in str(err) and str(err).isascii()


@pytest.mark.parametrize("raw", [b"\xed\xa0\x80", b"\\ud800", b"\\u0000"])
def test_bad_string_in_the_text(raw: bytes) -> None:
    """A surrogate written as UTF-8 bytes (json's surrogatepass) or as an escape."""
    text = jsonfast.dumps(base()).encode().replace(b'"hostname":"pyoci"', b'"hostname":"py' + raw + b'"')
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.field == "$.hostname"


def test_bad_string_in_utf16_text() -> None:
    cfg = base()
    cfg["hostname"] = "a\ud800"
    text = jsonfast.dumps(cfg).encode("utf-16", "surrogatepass")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.field == "$.hostname"


def test_good_unicode_accepted() -> None:
    cfg = base()
    cfg["process"]["env"].append("NAME=\u00e9\u4e2d\U0001f600")
    cfg["annotations"]["\u00e9"] = "\U0001f600"
    parse_config(jsonfast.dumps(cfg))


def test_process_file_strings(tmp_path: Path) -> None:
    proc = copy.deepcopy(base()["process"])
    proc["args"] = ["sh", "-c", "x\x00y"]
    f = tmp_path / "p.json"
    f.write_text(jsonfast.dumps(proc))
    with pytest.raises(ConfigError) as info:
        load_process(str(f))
    assert info.value.field == "$.args[2]" and f"process file {f}" in str(info.value)


def test_resources_file_strings(tmp_path: Path) -> None:
    f = tmp_path / "r.json"
    f.write_text(jsonfast.dumps({"unified": {"memory.max": "1\ud800"}}))
    with pytest.raises(ConfigError) as info:
        load_resources(str(f))
    assert info.value.field == '$.unified["memory.max"]'


def test_deep_nesting_is_a_config_error() -> None:
    deep: Any = []
    for _ in range(600):
        deep = [deep, "\x00"]
    with pytest.raises(ConfigError):
        limits.check_strings({"a": deep})


# -- numbers that reach C ----------------------------------------------------------------

NUMBERS = [
    (lambda c: c["process"].__setitem__("consoleSize", {"height": 70000, "width": 80}),
     "$.process.consoleSize.height"),
    (lambda c: c["process"].__setitem__("consoleSize", {"height": 1, "width": 65536}),
     "$.process.consoleSize.width"),
    (lambda c: c["process"]["user"].__setitem__("umask", 4294967295), "$.process.user.umask"),
    (lambda c: c["process"]["user"].__setitem__("umask", 0o1000), "$.process.user.umask"),
    (lambda c: c["process"].__setitem__("oomScoreAdj", 1001), "$.process.oomScoreAdj"),
    (lambda c: c["process"].__setitem__("oomScoreAdj", -2**40), "$.process.oomScoreAdj"),
    (lambda c: c["linux"].__setitem__("devices", [{"path": "/dev/x", "type": "c", "major": -1, "minor": 1}]),
     "$.linux.devices[0].major"),
    (lambda c: c["linux"].__setitem__("devices", [{"path": "/dev/x", "type": "c", "major": 1,
                                                   "minor": 2**40}]), "$.linux.devices[0].minor"),
    (lambda c: c["linux"].__setitem__("devices", [{"path": "/dev/x", "type": "c", "major": 4096,
                                                   "minor": 1}]), "$.linux.devices[0].major"),
    (lambda c: c["linux"].__setitem__("devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 1,
                                                   "fileMode": 0o60666}]), "$.linux.devices[0].fileMode"),
    (lambda c: c["linux"].__setitem__("devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 1,
                                                   "uid": 4294967295}]), "$.linux.devices[0].uid"),
    (lambda c: c["linux"]["seccomp"]["syscalls"][0].__setitem__("errnoRet", 65537),
     "$.linux.seccomp.syscalls[0].errnoRet"),
    (lambda c: c["linux"]["seccomp"].update(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=4096),
     "$.linux.seccomp.defaultErrnoRet"),
    (lambda c: c["linux"]["seccomp"]["syscalls"][0].__setitem__(
        "args", [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]),
     "$.linux.seccomp.syscalls[0].args[0].index"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "time"}), c["linux"].__setitem__(
        "timeOffsets", {"boottime": {"secs": 1, "nanosecs": 1000000000}})),
     "$.linux.timeOffsets.boottime.nanosecs"),
    (lambda c: c["hooks"]["createRuntime"][0].__setitem__("timeout", 2**31),
     "$.hooks.createRuntime[0].timeout"),
    (lambda c: c.__setitem__("hostname", "h" * 65), "$.hostname"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "user"}), c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": 4294967295 - 10, "size": 11}],
        gidMappings=[{"containerID": 0, "hostID": 0, "size": 1}])), "$.linux.uidMappings[0].hostID"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "user"}), c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": 0, "size": 1}],
        gidMappings=[{"containerID": 0, "hostID": 0, "size": 0}])), "$.linux.gidMappings[0].size"),
    (lambda c: c["mounts"].append({"destination": "/m", "source": "/tmp", "type": "bind",
                                   "options": ["idmap"],
                                   "uidMappings": [{"containerID": 4294967290, "hostID": 1, "size": 6}],
                                   "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
     "$.mounts[7].uidMappings[0].containerID"),
]


@pytest.mark.parametrize(("put", "field"), NUMBERS, ids=[n[1] for n in NUMBERS])
def test_number_out_of_range_names_field_and_range(put: Any, field: str) -> None:
    cfg = base()
    put(cfg)
    err = refused(cfg)
    assert err.field == field, str(err)
    assert "must be" in str(err) or "runs past" in str(err)


def test_numbers_at_the_edges_accepted() -> None:
    cfg = base()
    cfg["process"]["consoleSize"] = {"height": 65535, "width": 0}
    cfg["process"]["user"]["umask"] = 0o777
    cfg["process"]["oomScoreAdj"] = -1000
    cfg["linux"]["devices"] = [{"path": "/dev/x", "type": "c", "major": 4095, "minor": 1048575,
                                "fileMode": 0o7777, "uid": 2147483647}]
    cfg["linux"]["seccomp"]["syscalls"][0]["errnoRet"] = 4095
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 4294967294, "size": 1}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 4294967295}]
    cfg["hostname"] = "h" * 64
    parse_config(jsonfast.dumps(cfg))


def test_process_file_numbers(tmp_path: Path) -> None:
    proc = copy.deepcopy(base()["process"])
    proc["consoleSize"] = {"height": 70000, "width": 1}
    f = tmp_path / "p.json"
    f.write_text(jsonfast.dumps(proc))
    with pytest.raises(ConfigError) as info:
        load_process(str(f))
    assert info.value.field == "$.consoleSize.height"


# -- reading the file: bounded, regular files only ------------------------------------------


def test_config_symlink_to_dev_zero(tmp_path: Path) -> None:
    (tmp_path / "config.json").symlink_to("/dev/zero")
    with pytest.raises(PyociError) as info:
        load_config(str(tmp_path))
    assert "a character device, not a regular file" in str(info.value)
    assert str(tmp_path / "config.json") in str(info.value)


def test_config_fifo_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "config.json")
    result: list[BaseException | None] = []

    def load() -> None:
        try:
            load_config(str(tmp_path))
            result.append(None)
        except BaseException as e:  # noqa: BLE001
            result.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():    # unblock the thread (a writer opens, then closes)
        fd = os.open(tmp_path / "config.json", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("load_config blocked on a FIFO")
    assert isinstance(result[0], PyociError) and "a FIFO, not a regular file" in str(result[0])


def test_config_over_the_limit(tmp_path: Path) -> None:
    with open(tmp_path / "config.json", "wb") as f:
        f.truncate(limits.MAX_DOCUMENT_BYTES + 1)       # sparse: nothing is written or read
    with pytest.raises(PyociError) as info:
        load_config(str(tmp_path))
    assert "larger than pyoci's limit of 16 MiB" in str(info.value)


def test_process_file_device(tmp_path: Path) -> None:
    with pytest.raises(PyociError) as info:
        load_process("/dev/zero")
    assert "read process file /dev/zero: a character device" in str(info.value)


def test_config_at_the_limit_is_read(tmp_path: Path) -> None:
    text = jsonfast.dumps(base()).encode()
    (tmp_path / "config.json").write_bytes(text + b" " * (limits.MAX_DOCUMENT_BYTES - len(text)))
    load_config(str(tmp_path))
