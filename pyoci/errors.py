"""One exception tree for pyoci.

Every failure that reaches the user is a :class:`PyociError`.  Its fields say
*what* failed (``op``: a syscall or step, ``field``: a JSON path in config.json,
``path``: a file) and *why* (``errno``), plus a ``hint`` where we know the usual
cause.  ``str(err)`` is the one line the CLI prints; it reads like a path from
the outer operation to the cause, e.g.::

    mount proc on /proc: Operation not permitted (hint: ...)
"""

from __future__ import annotations

import os


class PyociError(Exception):
    """Root of every error pyoci raises on purpose."""

    exit_code = 1

    def __init__(
        self,
        msg: str,
        *,
        op: str | None = None,
        path: str | None = None,
        field: str | None = None,
        errno: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.op = op
        self.path = path
        self.field = field
        self.errno = errno
        self.hint = hint

    def __str__(self) -> str:
        text = self.msg
        if self.errno:
            text = f"{text}: {os.strerror(self.errno)}"
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        return text

    @classmethod
    def from_os(cls, op: str, exc: OSError, *, path: str | None = None,
                hint: str | None = None) -> PyociError:
        where = path or exc.filename
        msg = f"{op} {where}" if where else op
        return cls(msg, op=op, path=str(where) if where else None,
                   errno=exc.errno, hint=hint)


class UsageError(PyociError):
    """Bad command line."""


class ConfigError(PyociError):
    """config.json is missing, unreadable, not valid JSON, fails the schema or a
    semantic check.  ``field`` is the JSON path of the offending value
    (``$.process.args``) and is part of the message."""

    def __init__(self, field: str, msg: str, *, hint: str | None = None,
                 source: str = "config.json") -> None:
        super().__init__(f"{source} {field}: {msg}", field=field, hint=hint)
        self.detail = msg
        self.source = source

    def relabel(self, source: str) -> ConfigError:
        """The same error about another document (a --process or --resources file)."""
        return ConfigError(self.field or "$", self.detail, hint=self.hint, source=source)


class ContainerNotFound(PyociError):
    def __init__(self, cid: str) -> None:
        super().__init__(f"container {cid!r} does not exist")
        self.cid = cid


class ContainerExists(PyociError):
    def __init__(self, cid: str) -> None:
        # runc's words in brackets: engines match them (see RUNC_PHRASES).
        super().__init__(f"container {cid!r} already exists (container with id exists: {cid})")
        self.cid = cid


# Engines classify a runtime's errors by runc's wording: containerd's shim
# reads "container not running" (also "no such process", "os: process
# already finished") after a kill as "already exited" and "does not exist"
# as "no such container"; Podman and CRI-O look for the same phrases.  Each
# refused transition keeps pyoci's sentence and adds runc's key phrase:
# (verb, status) -> phrase, where status None stands for any status.
RUNC_PHRASES: dict[tuple[str, str | None], str] = {
    ("kill", "stopped"): "container not running",
    ("pause", None): "container not running",
    ("resume", None): "container not paused",
    ("ps", "stopped"): "container not running",
    ("update", "stopped"): "container not running",
    ("exec in", "stopped"): "cannot exec in a stopped container",
    ("exec in", "paused"): "cannot exec in a paused container: use --ignore-paused to override",
    ("exec in", "creating"): "container not running",
    ("start", "running"): "cannot start an already running container",
    ("start", "paused"): "cannot start an already running container",
    ("start", "stopped"): "cannot start a container that has stopped",
    ("start", "creating"): "container not created",
    ("delete", None): "container is not stopped",
}


class DamagedState(PyociError):
    """A file of a container's state directory cannot be read or makes no
    sense (``path``: the file); only `delete --force` goes on with it."""

    def __init__(self, cid: str, path: str, what: str) -> None:
        super().__init__(f"container {cid!r}: damaged state file {path}: {what}", path=path,
                         hint=f"pyoci delete --force {cid} removes what can be identified")
        self.cid = cid
        self.what = what


class ContainerBusy(PyociError):
    """Another pyoci command holds the container's lock for too long."""


class InvalidTransition(PyociError):
    """The verb is not allowed in the container's current status."""

    def __init__(self, cid: str, verb: str, status: str) -> None:
        state = status.split(" ", 1)[0]
        phrase = RUNC_PHRASES.get((verb, state)) or RUNC_PHRASES.get((verb, None))
        msg = f"cannot {verb} container {cid!r}: it is {status}"
        super().__init__(f"{msg} ({phrase})" if phrase else msg)
        self.cid = cid
        self.verb = verb
        self.status = status


class ChildError(PyociError):
    """A step of the C helper failed in the child; ``op`` names the step."""


class HookError(PyociError):
    """A hook exited non-zero, timed out or could not be started."""
