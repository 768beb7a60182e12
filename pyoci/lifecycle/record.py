"""The container state record: what `create` saves in state.json, typed.

Only this module knows state.json's keys.  The rest of pyoci reads and
writes a StateRecord's attributes; ``StateRecord.from_json`` checks every
field it reads (a damaged field is named and left at its default) and
``to_json`` writes the file's object.  The keys the OCI state has (``ociVersion``,
``id``, ``pid``, ``bundle``, ``created``, ``owner``, ``annotations``) keep
runc's spelling.

Format versions (``stateVersion``):
  1  pyoci before the record existed: no ``stateVersion`` key, otherwise the
     same keys; read as version 2 (migrated: nothing to convert, a missing
     field takes its default as it did then).
  2  this one.
A newer version is refused (NewerState): its fields may mean something this
pyoci does not know.

A __slots__ class, not a dataclass: the hot paths (create, start, state,
delete, kill) must not import dataclasses or typing (tests/unit/test_import_cost.py).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_VERSION = 2
VERSION_KEY = "stateVersion"
PID_MAX = 1 << 22           # the kernel's PID_MAX_LIMIT

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
            bad = _field_problem(key, v)
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


def _field_problem(key: str, v: Any) -> str | None:
    """What is wrong with one field's value beyond its type, or None."""
    if key == "pid" and not 0 < v <= PID_MAX:
        return f"pid {v} is out of range"
    if key == "pid_start" and v <= 0:
        return f"pid_start {v} is out of range"
    if key in ("rootfs", "freezer") and v is not None and not _abs_path(v):
        return f"{key} is not an absolute path"
    if key == "cgroup_paths" and not all(type(k) is str and _abs_path(p) for k, p in v.items()):
        return "cgroup_paths has a value that is not an absolute path"
    if key == "cgroups_created" and not all(_abs_path(p) for p in v):
        return "cgroups_created has an entry that is not an absolute path"
    if key == "annotations" and not all(type(x) is str for x in v.values()):
        return "annotations has a value that is not a string"
    if key == "hooks" and not all(type(hs) is list and all(type(h) is dict and type(h.get("path")) is str
                                                            for h in hs) for hs in v.values()):
        return "hooks is not a list of hooks with a path for each stage"
    return None
