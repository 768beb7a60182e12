"""Which linux.resources fields pyoci applies, and that the rest is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyoci.errors import PyociError
from pyoci.linux import cgroups

GOOD = Path(__file__).resolve().parents[2] / "spec-fixtures" / "config" / "good"


def test_podman_resources_are_all_supported() -> None:
    for f in sorted(GOOD.glob("podman-*.json")):
        res = (json.loads(f.read_text()).get("linux") or {}).get("resources") or {}
        assert cgroups.unsupported(res) == [], f.name


def test_update_payload_from_podman_is_supported() -> None:
    assert cgroups.unsupported({"memory": {"limit": 134217728, "swap": 268435456},
                                "cpu": {"shares": 512}}) == []


@pytest.mark.parametrize("res,field", [
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]}},
     "$.linux.resources.blockIO.throttleReadBpsDevice"),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, "$.linux.resources.hugepageLimits"),
    ({"network": {"classID": 1}}, "$.linux.resources.network.classID"),
    ({"unified": {"memory.high": "1"}}, "$.linux.resources.unified"),
    ({"cpu": {"burst": 10}}, "$.linux.resources.cpu.burst"),
])
def test_unsupported_fields_are_named(res: dict[str, object], field: str) -> None:
    assert cgroups.unsupported(res) == [field]
    with pytest.raises(PyociError) as e:
        cgroups.check_supported(res)
    assert field in str(e.value)


def test_empty_and_ignored_fields_pass() -> None:
    assert cgroups.unsupported({"blockIO": {}, "memory": {"kernel": 1, "kernelTCP": 2},
                                "devices": [], "hugepageLimits": []}) == []
