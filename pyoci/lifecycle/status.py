"""The container status: a closed set and the table of what each verb may do.

The set is closed for the type checker (``Status`` is a Literal of the five
values; mypy rejects any other string) and costs nothing at run time: the
``enum`` module alone takes ~7 ms to import, more than a third of the
interpreter's own start-up, and every engine call pays it.

Status is never trusted from a file: :mod:`pyoci.lifecycle.store` derives it
from facts each time (is the init alive with the start time we recorded, is
the start socket still there, is the cgroup frozen).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, Literal

    Status = Literal["creating", "created", "running", "paused", "stopped"]


CREATING: Final = "creating"
CREATED: Final = "created"
RUNNING: Final = "running"
PAUSED: Final = "paused"
STOPPED: Final = "stopped"
ALL: frozenset[Status] = frozenset({CREATING, CREATED, RUNNING, PAUSED, STOPPED})

# verb -> statuses in which it is allowed.
ALLOWED: dict[str, frozenset[Status]] = {
    "start": frozenset({CREATED}),
    "kill": frozenset({CREATED, RUNNING, PAUSED}),
    "delete": frozenset({STOPPED}),
    "delete --force": ALL,
    "pause": frozenset({RUNNING}),
    "resume": frozenset({PAUSED}),
    "exec": frozenset({CREATED, RUNNING}),
    "ps": frozenset({CREATED, RUNNING, PAUSED}),
    "update": frozenset({CREATED, RUNNING, PAUSED}),
}

def can(verb: str, status: Status) -> bool:
    return status in ALLOWED[verb]


# The status each hook stage sees on stdin.  prestart hooks run during
# `create`, right before createRuntime and like it, as runtime-spec 1.0.2+
# says and runc 1.1.5 does (status "creating"); engines rely on them having
# run when `create` returns.  (The OCI validation suite's 1.0.0-era assertion
# that they run at `start` is not followed.)
HOOK_STATUS: dict[str, Status] = {
    "prestart": CREATING,
    "createRuntime": CREATING,
    "createContainer": CREATING,
    "startContainer": CREATED,
    "poststart": RUNNING,
    "poststop": STOPPED,
}
