"""pyoci features: what this runtime supports, as runtime-spec features.md defines."""

from __future__ import annotations

import json
import sys

from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

USAGE = ""
FLAGS: list[Flag] = []


def features() -> dict[str, Any]:
    from pyoci.linux.names import CAPABILITIES
    from pyoci.plan.mountopts import FLAG_OPTIONS, IGNORED_OPTIONS, PROPAGATION_OPTIONS

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                  "poststop"],
        "mountOptions": sorted(set(FLAG_OPTIONS) | set(PROPAGATION_OPTIONS) | IGNORED_OPTIONS),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": sorted(CAPABILITIES),
            "cgroup": {"v1": False, "v2": False, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.pyoci.version": __import__("pyoci").__version__},
    }


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    sys.stdout.write(json.dumps(features(), indent=2) + "\n")
    return 0
