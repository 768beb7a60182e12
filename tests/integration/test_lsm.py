"""LSM labels: a requested profile or label the host cannot apply is an
error naming the field, never silently ignored (this machine has neither
AppArmor nor SELinux)."""

from __future__ import annotations

import os

import pytest
from helpers.ocitest import Env

APPARMOR = os.path.exists("/sys/module/apparmor/parameters/enabled")
SELINUX = os.path.exists("/sys/fs/selinux/enforce")


@pytest.mark.skipif(APPARMOR, reason="AppArmor is enabled here")
def test_apparmor_profile_without_apparmor(oci: Env) -> None:
    b = oci.bundle()
    b.process["apparmorProfile"] = "docker-default"
    r = oci.run(b)
    assert r.rc != 0
    assert len(r.err_lines) == 1, str(r)
    assert "$.process.apparmorProfile" in r.err_lines[0]
    assert "AppArmor is not enabled" in r.err_lines[0]


@pytest.mark.skipif(SELINUX, reason="SELinux is enabled here")
@pytest.mark.parametrize("where", ["process.selinuxLabel", "linux.mountLabel"])
def test_selinux_label_without_selinux(oci: Env, where: str) -> None:
    b = oci.bundle()
    section, key = where.split(".")
    b.config.setdefault(section, {})[key] = "system_u:system_r:container_t:s0"
    r = oci.run(b)
    assert r.rc != 0
    assert len(r.err_lines) == 1, str(r)
    assert f"$.{where}" in r.err_lines[0]
    assert "SELinux is not enabled" in r.err_lines[0]
