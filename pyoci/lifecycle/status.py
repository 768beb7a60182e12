"""The container status: a closed set and the table of what each verb may do.

Status is never trusted from a file: :mod:`pyoci.lifecycle.store` derives it
from facts each time (is the init alive with the start time we recorded, is
the start socket still there, is the cgroup frozen).
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


# verb -> statuses in which it is allowed.
ALLOWED: dict[str, frozenset[Status]] = {
    "start": frozenset({Status.CREATED}),
    "kill": frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    "delete": frozenset({Status.STOPPED}),
    "delete --force": frozenset({Status.CREATING, Status.CREATED, Status.RUNNING, Status.PAUSED,
                                 Status.STOPPED}),
    "pause": frozenset({Status.RUNNING}),
    "resume": frozenset({Status.PAUSED}),
    "exec": frozenset({Status.CREATED, Status.RUNNING}),
    "ps": frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    "update": frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
}

# The transitions a verb makes when it succeeds.
TRANSITIONS: dict[tuple[Status, str], Status] = {
    (Status.CREATING, "create"): Status.CREATED,
    (Status.CREATED, "start"): Status.RUNNING,
    (Status.RUNNING, "pause"): Status.PAUSED,
    (Status.PAUSED, "resume"): Status.RUNNING,
    (Status.RUNNING, "exit"): Status.STOPPED,
    (Status.CREATED, "exit"): Status.STOPPED,
}


def can(verb: str, status: Status) -> bool:
    return status in ALLOWED[verb]
