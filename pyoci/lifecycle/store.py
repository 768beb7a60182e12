"""State on disk: ``<root>/<id>/`` per container.

Files in a container's directory:
  creator      "<pid> <start time>" of the `create` that makes it (removed
               when create succeeds): alive and no state.json is "creating"
  cgroups.json the cgroup directories create is about to make (see container.py)
  init         "<pid> <start time>" of the container's init, written as soon
               as create learns it (SYNC 2): a delete after a killed create
               finds the init by it
  state.json   what create recorded (pid, its start time, bundle, hooks, ...),
               written atomically (temp file + rename) once create succeeds;
               its keys, format versions and checks are StateRecord's (below)
               (a damaged file is a DamagedState error naming it, and only
               `delete --force` goes on; a newer format is refused)
  start.sock   the socket the init waits on until `start` (its presence means
               "created")

Lock rules (flock on the directory):
  - `create` holds it exclusively from mkdir to its end (hooks included);
  - `start`, `kill`, `pause`, `resume`, `update`, `delete` take it
    exclusively, `exec` shared; none waits on a create: while the creator
    named in ``creator`` is alive (pid and start time) they fail at once with
    "it is creating", and `delete --force` kills that creator and the init
    it recorded, then takes the lock.  Any other holder is waited for, up to
    LOCK_WAIT seconds, then the command fails naming the container as busy;
  - `state`, `list`, `ps` and `events` never wait: they take the shared lock
    when it is free and otherwise read without it (state.json is replaced
    atomically and the status is derived from facts, so an unlocked read is
    consistent; a directory removed meanwhile reads as "does not exist").
A second `create` of an id fails at mkdir.
"""

from __future__ import annotations

import fcntl
import os
import time

from pyoci import jsonfast
from pyoci.errors import (
    ContainerBusy,
    ContainerExists,
    ContainerNotFound,
    DamagedState,
    InvalidTransition,
    PyociError,
)
from pyoci.lifecycle import status as st
from pyoci.linux import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

STATE_FILE = "state.json"
START_SOCKET = "start.sock"
CREATOR_FILE = "creator"
INIT_FILE = "init"
# How long a command waits for another one's lock (a create is never waited for).
LOCK_WAIT = 30.0
# A state.json is a few KiB (the config's process and annotations); config.json
# itself is bounded well below this.
STATE_MAX = 64 << 20
PID_MAX = 1 << 22           # the kernel's PID_MAX_LIMIT
SIGKILL = 9
_ENOSPC = 28
_EROFS = 30
_ID_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.+-")


def valid_id(cid: str) -> bool:
    """Letters, digits and _ . + -, starting with a letter or digit (as runc)."""
    return 0 < len(cid) <= 1024 and cid[0] in _ID_FIRST and all(c in _ID_CHARS for c in cid)


def default_root() -> str:
    """runc's rule: /run/pyoci for real root, $XDG_RUNTIME_DIR/pyoci for an
    unprivileged user or root inside a user namespace (rootless Podman)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() == 0 and (not xdg or proc.in_initial_userns()):
        return "/run/pyoci"
    if xdg:
        return os.path.join(xdg, "pyoci")
    return f"/tmp/pyoci-{os.geteuid()}"


def check_id(cid: str) -> None:
    if not valid_id(cid):
        raise PyociError(f"invalid container id {cid!r}",
                         hint="use letters, digits and _ . + -, starting with a letter or digit")


def write_atomic(dirfd: int, name: str, data: bytes, mode: int = 0o600) -> None:
    """Write all of data to name (temp file + rename); on failure nothing of
    it is left and the OSError propagates."""
    tmp = f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode, dir_fd=dirfd)
    try:
        # No fsync: the state lives on tmpfs (/run) and dies with a reboot
        # anyway; the rename alone keeps readers from seeing a partial file.
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp, dir_fd=dirfd)
        except OSError:
            pass
        raise


def _hint(e: OSError) -> str | None:
    if e.errno == _ENOSPC:
        return "the filesystem of the state directory (--root) is full"
    if e.errno == _EROFS:
        return "the state directory (--root) is on a read-only filesystem"
    return None


def write_error(what: str, path: str, e: OSError) -> PyociError:
    """The error for a state file that could not be written."""
    return PyociError.from_os(what, e, path=path, hint=_hint(e))


def write_file_atomic(path: str, data: bytes) -> None:
    """Write a file that may live anywhere (the pid file); a failure is a
    PyociError naming the flag, the file and the errno."""
    d, base = os.path.split(os.path.abspath(path))
    try:
        dirfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            write_atomic(dirfd, base, data, 0o644)
        finally:
            os.close(dirfd)
    except OSError as e:
        # (no --root hint: the pid file lives wherever the caller said)
        raise PyociError.from_os("write --pid-file", e, path=path) from None


def pid_record(pid: int) -> bytes:
    """"<pid> <start time>": a process named so that a reused pid is not it."""
    return f"{pid} {proc.start_time(pid) or 0}".encode()


def read_pid_record(dirfd: int, name: str) -> tuple[int, int] | None:
    """(pid, start time) from a pid_record file; None if absent or damaged."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dirfd)
    except OSError:
        return None
    try:
        data = os.read(fd, 64)
    except OSError:
        return None
    finally:
        os.close(fd)
    parts = data.split()
    if len(parts) != 2 or not all(p.isdigit() and len(p) < 20 for p in parts):
        return None
    pid, started = int(parts[0]), int(parts[1])
    if not 0 < pid <= PID_MAX or started <= 0:
        return None
    return pid, started


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out += [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pass
    return out


def kill_creator(dirfd: int) -> None:
    """SIGKILL the create named in ``creator`` (if it still is that process)
    and its children: stage1, the init before it is ready, hooks.  Each
    child is pinned by a pidfd while it is still the creator's child, so no
    other process is hit once they are reparented."""
    rec = read_pid_record(dirfd, CREATOR_FILE)
    if rec is None:
        return
    from pyoci.native._helper import lib

    pidfd = lib.pyoci_pidfd_open(rec[0])
    if pidfd < 0:
        return
    kids: list[int] = []
    try:
        if not proc.is_alive(*rec):
            return
        for kid in _children(rec[0]):
            fd = lib.pyoci_pidfd_open(kid)
            if fd < 0:
                continue
            fields = proc._stat_fields(kid)
            if fields is not None and fields[1] == str(rec[0]):
                kids.append(fd)
            else:
                os.close(fd)
        lib.pyoci_pidfd_send_signal(pidfd, SIGKILL)
        for fd in kids:
            lib.pyoci_pidfd_send_signal(fd, SIGKILL)
    finally:
        os.close(pidfd)
        for fd in kids:
            os.close(fd)


def kill_recorded(dirfd: int, name: str) -> int:
    """SIGKILL the process a pid_record names, if it still is that process;
    return its pid (0: none).  A pidfd pins it between the check and the kill."""
    rec = read_pid_record(dirfd, name)
    if rec is None:
        return 0
    from pyoci.native._helper import lib

    pidfd = lib.pyoci_pidfd_open(rec[0])
    if pidfd < 0:
        return 0
    try:
        if not proc.is_alive(*rec):
            return 0
        lib.pyoci_pidfd_send_signal(pidfd, SIGKILL)
        return rec[0]
    finally:
        os.close(pidfd)


# -- the state record: state.json ----------------------------------------------------
# The container state record: what `create` saves in state.json, typed.
#
# Only this section knows state.json's keys.  The rest of pyoci reads and
# writes a StateRecord's attributes; ``StateRecord.from_json`` checks every
# field it reads (a damaged field is named and left at its default) and
# ``to_json`` writes the file's object.  The keys the OCI state has (``ociVersion``,
# ``id``, ``pid``, ``bundle``, ``created``, ``owner``, ``annotations``) keep
# runc's spelling.
#
# Format versions (``stateVersion``):
#   1  pyoci before the record existed: no ``stateVersion`` key, otherwise the
#      same keys; read as version 2 (migrated: nothing to convert, a missing
#      field takes its default as it did then).
#   2  this one.
# A newer version is refused (NewerState): its fields may mean something this
# pyoci does not know.
#
# A __slots__ class, not a dataclass: the hot paths (create, start, state,
# delete, kill) must not import dataclasses or typing (tests/unit/test_import_cost.py);
# and here rather than in a module of its own, which would cost every
# command ~0.1 ms more to import.

STATE_VERSION = 2
VERSION_KEY = "stateVersion"

_NONE = type(None)
# JSON key -> (attribute, allowed JSON types (bool is not an int here)), in
# the order they are written.
_FIELDS: dict[str, tuple[str, tuple[type, ...]]] = {
    "ociVersion": ("oci_version", (str,)),
    "id": ("id", (str,)),
    "pid": ("pid", (int,)),
    "pid_start": ("pid_start", (int,)),
    "bundle": ("bundle", (str,)),
    "rootfs": ("rootfs", (str,)),
    "created": ("created", (str,)),
    "owner": ("owner", (int,)),
    "annotations": ("annotations", (dict,)),
    "hooks": ("hooks", (dict,)),
    "pid_ns_own": ("pid_ns_own", (bool,)),
    "own_mount_ns": ("own_mount_ns", (bool,)),
    "mount_ns_new": ("mount_ns_new", (bool,)),
    "process": ("process", (dict,)),
    "seccomp": ("seccomp", (dict, _NONE)),
    "personality": ("personality", (dict, _NONE)),
    "memoryPolicy": ("memory_policy", (dict, _NONE)),
    "new_keyring": ("new_keyring", (bool,)),
    "cgroup_paths": ("cgroup_paths", (dict,)),
    "cgroups_created": ("cgroups_created", (list,)),
    "freezer": ("freezer", (str, _NONE)),
    "resources": ("resources", (dict,)),
}
_REQUIRED = ("pid", "pid_start", "bundle")
# Written only when set (update adds them; the OCI state leaves out empty annotations).
_OPTIONAL = frozenset(("resources",))
_JSON_TYPE = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object", list: "an array",
              float: "a number", _NONE: "null"}


class NewerState(Exception):
    """state.json was written by a newer pyoci (its format version)."""

    def __init__(self, version: int) -> None:
        super().__init__(f"written by a newer pyoci (state format {version}; this one reads up to "
                         f"{STATE_VERSION})")
        self.version = version


class StateRecord:
    """One container's saved state.  ``loaded``: the JSON keys that were
    read and passed their checks (a record made by create has them all)."""

    __slots__ = ("version", "oci_version", "id", "pid", "pid_start", "bundle", "rootfs", "created",
                 "owner", "annotations", "hooks", "pid_ns_own", "own_mount_ns", "mount_ns_new",
                 "process", "seccomp", "personality", "memory_policy", "new_keyring", "cgroup_paths",
                 "cgroups_created", "freezer", "resources", "extra", "loaded")

    def __init__(self, *, oci_version: str, id: str, pid: int = 0, pid_start: int | None = None,
                 bundle: str = "", rootfs: str = "", created: str = "", owner: int | None = None,
                 annotations: dict[str, str] | None = None,
                 hooks: dict[str, list[dict[str, Any]]] | None = None, pid_ns_own: bool = False,
                 own_mount_ns: bool = True, mount_ns_new: bool = False,
                 process: dict[str, Any] | None = None, seccomp: dict[str, Any] | None = None,
                 personality: dict[str, Any] | None = None, memory_policy: dict[str, Any] | None = None,
                 new_keyring: bool = True, cgroup_paths: dict[str, str] | None = None,
                 cgroups_created: list[str] | None = None, freezer: str | None = None,
                 resources: dict[str, Any] | None = None) -> None:
        self.version = STATE_VERSION
        self.oci_version = oci_version
        self.id = id
        self.pid = pid                          # the init (0: unknown)
        self.pid_start = pid_start              # its start time: a reused pid is not it
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created                  # RFC 3339, UTC
        self.owner = owner                      # the euid of the create
        self.annotations = annotations if annotations is not None else {}
        # startContainer, poststart, poststop (the others ran during create)
        self.hooks = hooks if hooks is not None else {}
        self.pid_ns_own = pid_ns_own            # a pid namespace of its own
        self.own_mount_ns = own_mount_ns        # a mount namespace of its own (made or joined)
        self.mount_ns_new = mount_ns_new        # made by create, not joined
        self.process = process if process is not None else {}     # config.json's, for exec
        self.seccomp = seccomp                  # linux.seccomp, for exec
        self.personality = personality
        self.memory_policy = memory_policy
        self.new_keyring = new_keyring
        self.cgroup_paths = cgroup_paths if cgroup_paths is not None else {}
        self.cgroups_created = cgroups_created if cgroups_created is not None else []
        self.freezer = freezer                  # the freezer file of a cgroup pyoci made
        self.resources = resources if resources is not None else {}   # what `update` set
        self.extra: dict[str, Any] = {}         # keys this version does not use, kept as they are
        self.loaded: frozenset[str] = frozenset(_FIELDS)

    def has(self, key: str) -> bool:
        """The JSON key was read and sound (always, for a record create made)."""
        return key in self.loaded

    def hook_list(self, stage: str) -> list[dict[str, Any]]:
        return self.hooks.get(stage) or []

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {VERSION_KEY: self.version}
        for key, (attr, _) in _FIELDS.items():
            value = getattr(self, attr)
            if key in _OPTIONAL and not value:
                continue
            out[key] = value
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_json(cls, data: object) -> tuple[StateRecord, list[str]]:
        """The record of a parsed state.json and what is wrong with it (empty:
        a sound record).  A damaged field is named and keeps its default.
        NewerState for a format this pyoci does not know."""
        from pyoci import SPEC_VERSION

        rec = cls(oci_version=SPEC_VERSION, id="")
        if type(data) is not dict:
            rec.loaded = frozenset()
            return rec, [f"expected a JSON object, found {_JSON_TYPE.get(type(data), 'something else')}"]
        version = data.get(VERSION_KEY, 1)
        if type(version) is not int or version < 1:
            rec.loaded = frozenset()
            return rec, [f"{VERSION_KEY} {version!r} is not a format version"]
        if version > STATE_VERSION:
            raise NewerState(version)
        # version 1 -> 2: the same keys (the version key is new).
        loaded = set()
        problems: list[str] = []
        for key, v in data.items():
            field = _FIELDS.get(key)
            if field is None:
                if key != VERSION_KEY:
                    rec.extra[key] = v      # not used by this version
                continue
            attr, types = field
            if type(v) not in types:
                want = " or ".join(_JSON_TYPE[t] for t in types)
                problems.append(f"{key} is {_JSON_TYPE.get(type(v), 'something else')}, expected {want}")
                continue
            check = _FIELD_CHECKS.get(key)
            bad = None if check is None else check(key, v)
            if bad:
                problems.append(bad)
                continue
            setattr(rec, attr, v)
            loaded.add(key)
        problems += [f"{key} is missing" for key in _REQUIRED if key not in data]
        rec.loaded = frozenset(loaded)
        return rec, problems


def _abs_path(v: object) -> bool:
    return type(v) is str and v.startswith("/") and "\0" not in v and "/../" not in v + "/"


def _absolute_or_none(key: str, v: Any) -> str | None:
    return None if v is None or _abs_path(v) else f"{key} is not an absolute path"


# What is wrong with one field's value beyond its type (None: nothing), for
# the fields that have more to check than their type.
_FIELD_CHECKS: dict[str, Callable[[str, Any], str | None]] = {
    "pid": lambda k, v: None if 0 < v <= PID_MAX else f"pid {v} is out of range",
    "pid_start": lambda k, v: None if v > 0 else f"pid_start {v} is out of range",
    "rootfs": _absolute_or_none,
    "freezer": _absolute_or_none,
    "cgroup_paths": lambda k, v: (None if all(type(c) is str for c in v) and all(map(_abs_path, v.values()))
                                  else "cgroup_paths has a value that is not an absolute path"),
    "cgroups_created": lambda k, v: (None if all(map(_abs_path, v))
                                     else "cgroups_created has an entry that is not an absolute path"),
    "annotations": lambda k, v: (None if all(type(x) is str for x in v.values())
                                 else "annotations has a value that is not a string"),
    "hooks": lambda k, v: (None if all(type(hs) is list and all(type(h) is dict and type(h.get("path")) is str
                                                                for h in hs) for hs in v.values())
                           else "hooks is not a list of hooks with a path for each stage"),
}


class Container:
    """A container's directory, locked (or read without the lock: ``locked``
    False), and what its state file says."""

    __slots__ = ("root", "cid", "dirfd", "state", "damage", "locked")

    def __init__(self, root: str, cid: str, dirfd: int, state: StateRecord | None,
                 damage: str | None = None, locked: bool = True) -> None:
        self.root = root
        self.cid = cid
        self.dirfd = dirfd
        # With ``damage`` (what is wrong with state.json), only the fields
        # that passed the checks.
        self.state = state
        self.damage = damage
        self.locked = locked

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.cid)

    @property
    def pid(self) -> int:
        return self.state.pid if self.state is not None else 0

    def status(self) -> st.Status:
        """Derived from facts, never trusted from the file."""
        if self.state is None:
            return st.CREATING if self.create_running() else st.STOPPED
        started = self.state.pid_start
        if started is None or not proc.is_alive(self.pid, started):
            return st.STOPPED
        if self.has_start_socket():
            return st.CREATED
        if self._frozen():
            return st.PAUSED
        return st.RUNNING

    def create_running(self) -> bool:
        """The `create` named in ``creator`` (pid and start time) still runs."""
        rec = read_pid_record(self.dirfd, CREATOR_FILE)
        return rec is not None and proc.is_alive(*rec)

    def has_start_socket(self) -> bool:
        try:
            os.stat(START_SOCKET, dir_fd=self.dirfd)
            return True
        except FileNotFoundError:
            return False

    def _frozen(self) -> bool:
        path = self.state.freezer if self.state is not None else None
        if not path:
            return False
        try:
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            return False
        return value in ("FROZEN", "1")

    def write(self, name: str, data: bytes) -> None:
        try:
            write_atomic(self.dirfd, name, data)
        except OSError as e:
            raise write_error("write the state file", os.path.join(self.path, name), e) from None

    def save(self, state: StateRecord) -> None:
        self.write(STATE_FILE, jsonfast.dumps(state.to_json()).encode())
        self.state = state

    def remove(self) -> None:
        """Remove the directory (flat: files and the socket only)."""
        try:
            names = os.listdir(self.dirfd)
        except OSError:
            names = []
        # state.json last: until the directory is gone, an unlocked reader
        # sees the container as it was.
        names.sort(key=lambda n: n == STATE_FILE)
        for name in names:
            try:
                os.unlink(name, dir_fd=self.dirfd)
            except IsADirectoryError:
                import shutil

                shutil.rmtree(os.path.join(self.path, name), ignore_errors=True)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise PyociError.from_os("remove", e, path=os.path.join(self.path, name),
                                         hint=_hint(e)) from None
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise PyociError.from_os("remove", e, path=self.path, hint=_hint(e)) from None

    def close(self) -> None:
        if self.dirfd >= 0:
            os.close(self.dirfd)
            self.dirfd = -1

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _try_lock(dirfd: int, shared: bool) -> bool:
    try:
        fcntl.flock(dirfd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _wait_lock(dirfd: int, shared: bool, cid: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not _try_lock(dirfd, shared):
        if time.monotonic() > deadline:
            raise ContainerBusy(f"container {cid!r} is busy: another pyoci command has held its lock "
                                f"for {timeout:g} s", hint="a stopped or hung pyoci process? "
                                f"(pyoci delete --force {cid} kills a stuck create)")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _read_state(dirfd: int) -> tuple[StateRecord | None, str | None]:
    """(state, what is wrong with it): (None, None) when there is no state.json.
    NewerState for a format this pyoci does not read."""
    try:
        fd = os.open(STATE_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dirfd)
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return no_state(), os.strerror(e.errno or 0)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(STATE_MAX + 1)
    except IsADirectoryError:
        return no_state(), "is a directory"
    except OSError as e:
        return no_state(), os.strerror(e.errno or 0)
    if len(data) > STATE_MAX:
        return no_state(), f"larger than {STATE_MAX >> 20} MiB"
    try:
        parsed = jsonfast.loads(data)
    except (ValueError, RecursionError):
        return no_state(), "not valid JSON (truncated?)"
    rec, problems = StateRecord.from_json(parsed)
    return rec, "; ".join(problems[:3]) or None


def no_state() -> StateRecord:
    """The record of a state.json that could not be read at all: no field loaded."""
    rec, _ = StateRecord.from_json(None)
    return rec


def open_container(root: str, cid: str, *, shared: bool = False, peek: bool = False,
                   force: bool = False, verb: str | None = None,
                   damaged_ok: bool = False) -> Container:
    """Open and lock an existing container; ContainerNotFound if there is none.

    ``peek`` (state, list, ps, events): never wait, read without the lock
    when another command holds it.  Otherwise a running create is not
    waited for: InvalidTransition (``verb``) at once, or with ``force`` the
    creator and the init it recorded are killed first.  A damaged state.json
    is a DamagedState error unless ``damaged_ok``."""
    check_id(cid)
    path = os.path.join(root, cid)
    try:
        dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise ContainerNotFound(cid) from None
    except OSError as e:
        raise PyociError.from_os("open the container's state", e, path=path,
                                 hint="it belongs to another user (another --root?)") from None
    try:
        locked = _try_lock(dirfd, shared or peek)
        if not locked and not peek:
            c = Container(root, cid, dirfd, None, locked=False)
            if c.create_running():
                if force:
                    # (also a create stopped after state.json, before it let go)
                    kill_creator(dirfd)
                    kill_recorded(dirfd, INIT_FILE)
                elif not os.path.exists(os.path.join(path, STATE_FILE)):
                    raise InvalidTransition(cid, verb or "use", "creating")
            _wait_lock(dirfd, shared, cid, LOCK_WAIT)
            locked = True
        if os.fstat(dirfd).st_nlink == 0:
            raise ContainerNotFound(cid)        # deleted while we waited for the lock
        try:
            state, damage = _read_state(dirfd)
        except NewerState as e:
            raise PyociError(f"container {cid!r}: state file {os.path.join(path, STATE_FILE)} was {e}",
                             path=os.path.join(path, STATE_FILE),
                             hint="use the pyoci that created the container") from None
        if not locked and state is None and os.fstat(dirfd).st_nlink == 0:
            raise ContainerNotFound(cid)        # being deleted
        if damage and not damaged_ok:
            raise DamagedState(cid, os.path.join(path, STATE_FILE), damage)
        return Container(root, cid, dirfd, state, damage, locked)
    except BaseException:
        os.close(dirfd)
        raise


def new_container(root: str, cid: str) -> Container:
    """Create and lock the directory of a new container."""
    check_id(cid)
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
    except OSError as e:
        raise PyociError.from_os("create the state directory", e, path=root,
                                 hint="pass --root DIR or set XDG_RUNTIME_DIR to a writable directory") from e
    path = os.path.join(root, cid)
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise ContainerExists(cid) from None
    except OSError as e:
        raise write_error("create the container's state directory", path, e) from None
    dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    c = Container(root, cid, dirfd, None)
    try:
        fcntl.flock(dirfd, fcntl.LOCK_EX)
        c.write(CREATOR_FILE, pid_record(os.getpid()))
    except BaseException:
        try:
            c.remove()
        except PyociError:
            pass
        c.close()
        raise
    return c


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise PyociError.from_os("list the state directory", e, path=root) from None
    return sorted(n for n in names if valid_id(n) and os.path.isdir(os.path.join(root, n)))


def oci_state(c: Container, status: st.Status) -> dict[str, Any]:
    """The runtime-spec state of ``c`` (what `pyoci state` prints)."""
    from pyoci import SPEC_VERSION

    rec = c.state
    out: dict[str, Any] = {
        "ociVersion": rec.oci_version if rec is not None else SPEC_VERSION,
        "id": c.cid,
        "status": status,
        "pid": c.pid if status is not st.STOPPED else 0,
        "bundle": rec.bundle if rec is not None else "",
    }
    if rec is not None and rec.annotations:
        out["annotations"] = rec.annotations
    return out


# The cgroup directories create is about to make, written before the first
# mkdir: delete reads it when create died before writing state.json.
CGROUPS_RECORD = "cgroups.json"


def hook_state(cid: str, cfg: dict[str, Any], bundle: str, pid: int, status: st.Status) -> dict[str, Any]:
    """The state a hook reads on its stdin."""
    from pyoci import SPEC_VERSION

    out: dict[str, Any] = {"ociVersion": cfg.get("ociVersion", SPEC_VERSION), "id": cid,
                           "status": status, "pid": pid, "bundle": bundle}
    if cfg.get("annotations"):
        out["annotations"] = cfg["annotations"]
    return out
