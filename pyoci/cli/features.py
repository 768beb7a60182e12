"""pyoci features: what this runtime supports, as runtime-spec features.md defines."""

from __future__ import annotations

import json
import sys

from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Print what this runtime supports as the runtime-spec features JSON
(features.md): hooks, mount options, namespaces, capabilities, cgroup
versions, seccomp actions, operators and architectures, and more."""
EXAMPLE = "pyoci features"
USAGE = ""
FLAGS: list[Flag] = []


def _have(module: str) -> bool:
    """Whether an optional library can be imported (without importing it)."""
    from importlib.util import find_spec

    return find_spec(module) is not None


def features() -> dict[str, Any]:
    from pyoci.linux.idmap import idmapped_mounts_supported
    from pyoci.linux.names import (
        CAPABILITIES,
        IOPRIO_CLASSES,
        MPOL_FLAGS,
        MPOL_MODES,
        PERSONALITY_DOMAINS,
        PERSONALITY_FLAGS,
        SCHED_FLAGS,
        SCHED_POLICIES,
    )
    from pyoci.plan.mountopts import FLAG_OPTIONS, IDMAP_OPTIONS, IGNORED_OPTIONS, PROPAGATION_OPTIONS

    # Idmapped mounts: what this kernel has (mount_setattr, Linux >= 5.12).
    idmap = idmapped_mounts_supported()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                  "poststop"],
        "mountOptions": sorted(set(FLAG_OPTIONS) | set(PROPAGATION_OPTIONS) | IGNORED_OPTIONS
                               | (IDMAP_OPTIONS if idmap else set())),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": sorted(CAPABILITIES),
            # v1 and hybrid: pyoci/cgroups/v1.py (rdma.max included); v2:
            # pyoci/cgroups/v2.py and bpfdev.py (devices).
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_NOTIFY",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
                          "SCMP_ARCH_ARM"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                               "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": idmap}},
            "memoryPolicy": {"modes": sorted(MPOL_MODES), "flags": sorted(MPOL_FLAGS)},
            # linux.netDevices (pyoci/linux/netdev.py) needs pyroute2.
            "netDevices": {"enabled": _have("pyroute2")},
        },
        # Fields the features document has no place for (yet): what pyoci
        # applies, comma-separated.
        "annotations": {
            "org.pyoci.version": __import__("pyoci").__version__,
            "org.pyoci.linux.personality.domains": ",".join(sorted(PERSONALITY_DOMAINS)),
            "org.pyoci.linux.personality.flags": ",".join(sorted(PERSONALITY_FLAGS)),
            "org.pyoci.process.ioPriority.classes": ",".join(sorted(IOPRIO_CLASSES)),
            # SCHED_ISO is in the schema but Linux never implemented it.
            "org.pyoci.process.scheduler.policies": ",".join(sorted(set(SCHED_POLICIES) - {"SCHED_ISO"})),
            "org.pyoci.process.scheduler.flags": ",".join(sorted(SCHED_FLAGS)),
            **_libraries(),
        },
    }


# The libraries pyoci runs on, and what needs each (README: "Dependencies").
LIBRARIES = {
    "cffi": ("_cffi_backend", "the native helper: every container and exec"),
    "jsonschema": ("jsonschema", "pyoci validate (the schema stage)"),
    "structlog": ("structlog", "the log: errors, warnings, --debug, --log, --log-format"),
    "pyroute2": ("pyroute2", "netlink: linux.netDevices"),
}


def _libraries() -> dict[str, str]:
    return {f"org.pyoci.library.{name}": f"{need} ({'installed' if _have(module) else 'missing'})"
            for name, (module, need) in LIBRARIES.items()}


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    sys.stdout.write(json.dumps(features(), indent=2) + "\n")
    return 0
