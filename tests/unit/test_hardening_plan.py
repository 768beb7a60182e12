"""Plans and checks for linux.personality, process.ioPriority,
process.scheduler and linux.memoryPolicy; the --preserve-fds placeholder."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pyoci.errors import ConfigError
from pyoci.linux.proc import hold_fd_range
from pyoci.plan.build import Host, MemoryPolicy, Scheduler, build_exec_plan, build_plan
from pyoci.spec import checks
from pyoci.spec.load import parse_config

REPO = Path(__file__).resolve().parents[2]
MINIMAL = json.loads((REPO / "spec-fixtures" / "config" / "good" / "minimal.json").read_text())
ROOT = Host(euid=0, egid=0, init_userns=True)


def _cfg(process: dict[str, Any] | None = None, linux: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = copy.deepcopy(MINIMAL)
    cfg.setdefault("process", {}).update(process or {})
    cfg.setdefault("linux", {}).update(linux or {})
    return cfg


def _plan(cfg: dict[str, Any]) -> Any:
    cfg = parse_config(json.dumps(cfg).encode())
    return build_plan(cfg, "/b", "/b/rootfs", ROOT).process


@pytest.mark.parametrize(("text", "nodes"), [
    ("0", [0]), ("0-3", [0, 1, 2, 3]), ("7,0-1", [0, 1, 7]), (" 2 , 2-3", [2, 3]), ("1023", [1023]),
])
def test_node_list(text: str, nodes: list[int]) -> None:
    assert checks.parse_node_list(text) == nodes


@pytest.mark.parametrize("text", ["", "a", "1-", "-1", "3-1", "1,,2", "1024", "0x1", "1-2-3"])
def test_bad_node_list(text: str) -> None:
    with pytest.raises(ValueError):
        checks.parse_node_list(text)


def test_nothing_asked_nothing_planned() -> None:
    p = _plan(_cfg())
    assert (p.io_priority, p.scheduler, p.personality, p.memory_policy) == (None, None, None, None)


def test_values_become_the_kernels_numbers() -> None:
    p = _plan(_cfg(
        process={"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 7},
                 "scheduler": {"policy": "SCHED_RR", "priority": 5,
                               "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_KEEP_PARAMS"]}},
        linux={"personality": {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE", "UNAME26"]},
               "memoryPolicy": {"mode": "MPOL_PREFERRED_MANY", "nodes": "1,3",
                                "flags": ["MPOL_F_RELATIVE_NODES"]}}))
    assert p.io_priority == 3 << 13 | 7
    assert p.scheduler == Scheduler(2, 0, 5, 0x01 | 0x10, 0, 0, 0)
    assert p.personality == 0x0008 | 0x0040000 | 0x0020000
    assert p.memory_policy == MemoryPolicy(5 | 1 << 14, [1, 3])


def test_exec_plan_takes_the_containers_personality_and_memory_policy() -> None:
    process = {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
               "scheduler": {"policy": "SCHED_IDLE"}}
    plan = build_exec_plan(process, [], None, ROOT, False, None, {"domain": "LINUX32"},
                           {"mode": "MPOL_LOCAL"})
    assert plan.process.personality == 8
    assert plan.process.memory_policy == MemoryPolicy(4, [])
    assert plan.process.scheduler == Scheduler(5, 0, 0, 0, 0, 0, 0)
    assert plan.process.io_priority is None


BAD: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": -1}}, {}, "$.process.ioPriority.priority"),
    ({"scheduler": {"policy": "SCHED_OTHER", "nice": -21}}, {}, "$.process.scheduler.nice"),
    ({"scheduler": {"policy": "SCHED_IDLE", "nice": 3}}, {}, "$.process.scheduler.nice"),
    ({"scheduler": {"policy": "SCHED_RR", "priority": 100}}, {}, "$.process.scheduler.priority"),
    ({"scheduler": {"policy": "SCHED_BATCH", "priority": 1}}, {}, "$.process.scheduler.priority"),
    ({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 5, "deadline": 2}}, {}, "$.process.scheduler"),
    ({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 1, "deadline": 5, "period": 4}}, {},
     "$.process.scheduler"),
    ({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 1}}, {}, "$.process.scheduler.deadline"),
    ({"scheduler": {"policy": "SCHED_OTHER", "period": 10}}, {}, "$.process.scheduler.period"),
    ({}, {"memoryPolicy": {"mode": "MPOL_LOCAL", "nodes": "0"}}, "$.linux.memoryPolicy.nodes"),
    ({}, {"memoryPolicy": {"mode": "MPOL_INTERLEAVE", "nodes": ""}}, "$.linux.memoryPolicy.nodes"),
    ({}, {"memoryPolicy": {"mode": "MPOL_PREFERRED", "flags": ["MPOL_F_STATIC_NODES"]}},
     "$.linux.memoryPolicy.flags"),
    ({}, {"personality": {"domain": "LINUX", "flags": ["PER_BOGUS"]}}, "$.linux.personality.flags[0]"),
]


@pytest.mark.parametrize(("process", "linux", "field"), BAD)
def test_values_the_kernel_would_refuse_name_the_field(process: dict[str, Any], linux: dict[str, Any],
                                                       field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(_cfg(process, linux)).encode())
    assert info.value.field == field, str(info.value)


GOOD: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"scheduler": {"policy": "SCHED_OTHER", "nice": -20}}, {}),
    ({"scheduler": {"policy": "SCHED_FIFO", "priority": 99, "nice": 0}}, {}),
    ({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 1024, "deadline": 2048}}, {}),
    ({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 0}}, {}),
    ({}, {"memoryPolicy": {"mode": "MPOL_PREFERRED"}}),
    ({}, {"memoryPolicy": {"mode": "MPOL_DEFAULT"}}),
    ({}, {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0-1",
                           "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_NUMA_BALANCING"]}}),
    ({}, {"personality": {"domain": "LINUX"}}),
]


@pytest.mark.parametrize(("process", "linux"), GOOD)
def test_values_the_kernel_takes_pass(process: dict[str, Any], linux: dict[str, Any]) -> None:
    parse_config(json.dumps(_cfg(process, linux)).encode())


def test_exec_process_document_is_checked_too() -> None:
    with pytest.raises(ConfigError) as info:
        checks.check_process({"args": ["sh"], "cwd": "/", "scheduler": {"policy": "SCHED_FIFO"}}, "$")
    assert info.value.field == "$.scheduler.priority"


def test_hold_fd_range_fills_only_the_gaps() -> None:
    first = 300
    keep = os.open("/dev/zero", os.O_RDONLY)
    os.dup2(keep, first + 1, inheritable=True)
    os.close(keep)
    try:
        hold_fd_range(first, 3)
        assert os.path.samestat(os.fstat(first + 1), os.stat("/dev/zero"))
        for fd in (first, first + 2):
            assert os.path.samestat(os.fstat(fd), os.stat("/dev/null"))
            assert os.get_inheritable(fd)
    finally:
        for fd in range(first, first + 3):
            try:
                os.close(fd)
            except OSError:
                pass
