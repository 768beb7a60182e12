"""`pyoci validate`: everything that would stop a bundle from running here,
found without running anything, reported all at once.

Three stages, each adding :class:`Problem` s:

1. **schema**: config.json against the runtime-spec JSON Schema shipped in
   pyoci/spec/schema/ (the file spec-fixtures/schema holds), with the
   jsonschema library: every error, each with its JSON path, the rule
   broken and the offending value (cut to :data:`VALUE_WIDTH` characters).
   pyoci's one deliberate difference from the plain schema: an integral
   float (``1.0``) is not an integer (the generated validator on the create
   path is as strict, and tests keep the two in agreement).
2. **check**: ``ociVersion`` and every semantic check of
   :mod:`pyoci.spec.checks` (each check reports its first failure; all
   checks run).
3. **host**: what this machine and caller can provide: the rootfs, the
   namespaces the config asks for (and those it joins), seccomp and
   idmapped mounts when used, cgroup files for the limits, the id maps
   (rootless: covered by the caller's /etc/subuid and /etc/subgid), and what
   `create` refuses while planning (sysctls whose namespace the container
   does not own, ...).

jsonschema is imported here only: the create path uses the generated
validator (:mod:`pyoci.spec._validator`).
"""

from __future__ import annotations

import os
from typing import Any

from pyoci.errors import ConfigError, PyociError

VALUE_WIDTH = 80
SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "schema", "config.schema.json")

# config.json namespace type -> /proc/self/ns entry
NS_FILES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
            "user": "user", "cgroup": "cgroup", "time": "time"}


class Problem:
    __slots__ = ("stage", "path", "rule", "message", "value")

    def __init__(self, stage: str, path: str, rule: str, message: str, value: str | None = None) -> None:
        self.stage = stage
        self.path = path
        self.rule = rule
        self.message = message
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage, "path": self.path, "rule": self.rule,
                               "message": self.message}
        if self.value is not None:
            out["value"] = self.value
        return out

    def line(self) -> str:
        text = f"{self.stage:<6} {self.path}: {self.message} [{self.rule}]"
        if self.value is not None:
            text += f" (value: {self.value})"
        return text


def cut(text: str, width: int = VALUE_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def show_value(value: Any) -> str:
    from pyoci import jsonfast

    try:
        text = jsonfast.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return cut(text)


def json_path(parts: Any) -> str:
    from pyoci.spec.checks import _key

    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else _key(str(p))
    return out


_validator_class: Any = None


def schema_validator() -> Any:
    """A jsonschema validator of the shipped schema (built once), whose
    "integer" is pyoci's: not a bool, not a float."""
    global _validator_class
    import jsonschema

    from pyoci import jsonfast

    if _validator_class is None:
        with open(SCHEMA_FILE, "rb") as f:
            schema = jsonfast.loads(f.read())
        draft = jsonschema.Draft202012Validator

        def strict_integer(_checker: object, instance: object) -> bool:
            return isinstance(instance, int) and not isinstance(instance, bool)

        cls = jsonschema.validators.extend(
            draft, type_checker=draft.TYPE_CHECKER.redefine("integer", strict_integer))
        _validator_class = cls(schema)
    return _validator_class


def _rule(error: Any) -> str:
    kind = str(error.validator)
    if kind in ("oneOf", "anyOf"):
        return f"{kind}: none of {len(error.validator_value)} alternatives matches"
    if kind in ("additionalProperties", "unevaluatedProperties") and error.validator_value is False:
        return f"{kind}: false"
    if isinstance(error.validator_value, (dict, list)) and kind not in ("required", "enum", "type"):
        return kind
    return cut(f"{kind}: {show_value(error.validator_value)}", 120)


def _schema_message(error: Any) -> str:
    kind = str(error.validator)
    if kind in ("oneOf", "anyOf") and error.context:
        # the alternative that got furthest says most
        import jsonschema

        best = jsonschema.exceptions.best_match(error.context)
        if best is not None:
            return cut(f"matches no allowed form (closest: {best.message})", 200)
    return cut(str(error.message), 200)


def _where(error: Any) -> list[tuple[list[Any], Any]]:
    """The JSON path(s) an error is about, and the value there: the missing
    or unknown member itself for required / additionalProperties /
    propertyNames, the closest alternative's for anyOf / oneOf."""
    base = list(error.absolute_path)
    kind = str(error.validator)
    inst = error.instance
    if kind == "required" and isinstance(inst, dict):
        return [([*base, k], None) for k in error.validator_value if k not in inst] or [(base, inst)]
    if "propertyNames" in error.schema_path:
        return [([*base, inst], inst)]
    if kind == "additionalProperties" and isinstance(inst, dict) and error.validator_value is False:
        known = set(error.schema.get("properties") or {})
        extra = [k for k in inst if k not in known]
        if extra:
            return [([*base, k], inst[k]) for k in extra]
    if kind in ("anyOf", "oneOf") and error.context:
        import jsonschema

        best = jsonschema.exceptions.best_match(error.context)
        if best is not None and len(best.absolute_path) > len(base):
            return _where(best)
    return [(base, inst)]


def schema_problems(doc: Any) -> list[Problem]:
    errors = sorted(schema_validator().iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    out = []
    for e in errors:
        for path, value in _where(e):
            out.append(Problem("schema", json_path(path), _rule(e), _schema_message(e),
                               None if value is None else show_value(value)))
    return out


def _value_at(doc: Any, path: str) -> Any:
    """The value at a simple JSON path ($.a.b[0]), or a KeyError."""
    import re

    cur = doc
    for name, index, quoted in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]",
                                          path[1:]):
        if index:
            cur = cur[int(index)]
        else:
            cur = cur[name or quoted.replace("\\'", "'").replace("\\\\", "\\")]
    return cur


def _from_error(stage: str, e: PyociError, doc: Any, rule: str) -> Problem:
    field = e.field or "$"
    msg = e.detail if isinstance(e, ConfigError) else str(e)
    if isinstance(e, ConfigError) and e.hint:
        msg = f"{msg} (hint: {e.hint})"
    value = None
    if field != "$":
        try:
            value = show_value(_value_at(doc, field))
        except (KeyError, IndexError, TypeError):
            value = None
    return Problem(stage, field, rule, msg, value)


def check_problems(doc: Any) -> list[Problem]:
    """ociVersion and every check in pyoci.spec.checks.CHECKS."""
    from pyoci.spec import checks
    from pyoci.spec.load import check_version

    out: list[Problem] = []
    if not isinstance(doc, dict):
        return out
    for name, check in [("ociVersion", check_version), *((c.__name__, c) for c in checks.CHECKS)]:
        try:
            check(doc)
        except PyociError as e:
            out.append(_from_error("check", e, doc, name))
        except Exception:  # noqa: S112 - a value the schema stage already reported
            continue
    return out


def host_problems(doc: dict[str, Any], bundle: str) -> list[Problem]:
    """What `create` would find missing on this host, without creating anything."""
    out: list[Problem] = []

    def add(path: str, rule: str, msg: str, value: Any = None) -> None:
        out.append(Problem("host", path, rule, msg, None if value is None else show_value(value)))

    root_path = (doc.get("root") or {}).get("path") or "rootfs"
    rootfs = os.path.realpath(os.path.join(bundle, root_path))
    if not os.path.isdir(rootfs):
        add("$.root.path", "rootfs present", f"{rootfs} is not a directory", root_path)

    linux = doc.get("linux") or {}
    for i, ns in enumerate(linux.get("namespaces") or []):
        ns_type = ns.get("type")
        name = NS_FILES.get(ns_type or "")
        if name is None:
            continue
        if not os.path.exists(f"/proc/self/ns/{name}"):
            add(f"$.linux.namespaces[{i}]", "namespace supported",
                f"this kernel has no {ns_type} namespaces (/proc/self/ns/{name} is missing)", ns_type)
        path = ns.get("path")
        if path:
            try:
                same_kind = os.stat(path).st_ino != 0
            except OSError as e:
                add(f"$.linux.namespaces[{i}].path", "namespace path exists",
                    f"{path}: {os.strerror(e.errno or 0)}", path)
                continue
            if not same_kind:
                add(f"$.linux.namespaces[{i}].path", "namespace path exists", f"{path} is not a namespace")

    if linux.get("seccomp") is not None and not _has_seccomp():
        add("$.linux.seccomp", "seccomp supported", "this kernel has no seccomp filters (no Seccomp: line in "
            "/proc/self/status)")

    for key in linux.get("sysctl") or {}:
        from pyoci.spec.checks import _key, sysctl_parts

        try:
            parts = sysctl_parts(key)
        except ValueError:
            continue                    # the check stage reported it
        if not os.path.exists(os.path.join("/proc/sys", *parts)):
            # A namespaced sysctl's file exists in a new namespace when it
            # exists here (the same kernel and modules).
            add("$.linux.sysctl" + _key(key), "sysctl exists",
                f"this kernel has no sysctl {key} (/proc/sys/{'/'.join(parts)} is missing)",
                linux["sysctl"][key])

    mounts = doc.get("mounts") or []
    idmapped = [i for i, m in enumerate(mounts) if isinstance(m, dict) and (
        m.get("uidMappings") or m.get("gidMappings")
        or any(o in ("idmap", "ridmap") for o in m.get("options") or []))]
    if idmapped:
        from pyoci.linux.idmap import idmapped_mounts_supported

        if not idmapped_mounts_supported():
            for i in idmapped:
                add(f"$.mounts[{i}]", "idmapped mounts supported",
                    "this kernel has no idmapped mounts (mount_setattr(2), Linux 5.12)")

    out += _preflight(doc, bundle, rootfs, add)
    return out


def _has_seccomp() -> bool:
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


def _preflight(doc: dict[str, Any], bundle: str, rootfs: str, add: Any) -> list[Problem]:
    """The checks `create` makes before it makes anything (see
    lifecycle.create.create): the cgroup layout and limits, the LSM
    labels, the plan (rootless rules, sysctls, devices, mounts), the id maps
    against /etc/subuid and /etc/subgid."""
    from pyoci.cgroups import manager as cgroups
    from pyoci.linux import proc
    from pyoci.plan.build import Host, build_plan
    from pyoci.spec.checks import check_lsm, has_limits

    out: list[Problem] = []
    linux = doc.get("linux") or {}

    def attempt(rule: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except PyociError as e:
            problem = _from_error("host", e, doc, rule)
            if not (e.field or "").startswith("$"):
                problem.path = "$"
            out.append(problem)
        except OSError as e:
            out.append(Problem("host", "$", rule, str(PyociError.from_os(rule, e))))
        return None

    init_userns = proc.in_initial_userns()
    cg = attempt("cgroup layout", cgroups.for_host)
    cg_limits = False
    binds: list[tuple[str, str]] = []
    if cg is not None:
        cg_paths = attempt("cgroupsPath", cg.container_paths, linux.get("cgroupsPath"), "validate")
        if cg_paths is not None:
            cg_required = os.geteuid() == 0 and init_userns
            mine = None if cg_required else cg.delegated_paths(linux.get("cgroupsPath"), "validate", cg_paths)
            cg_limits = cg_required or mine is not None
            binds = cg.mount_binds((mine or cg_paths) if cg_limits else None)
            resources = linux.get("resources") or {}
            if cg_limits:
                attempt("cgroup files for the limits", cg.check, resources)
            elif has_limits(resources):
                out.append(Problem("host", "$.linux.resources", "cgroup limits writable",
                                   "linux.resources asks for limits, but this user cannot write the host's "
                                   "cgroups (hint: run as root, use a delegated cgroup v2 tree, or drop the "
                                   "limits)"))
    attempt("LSM labels", check_lsm, doc)
    host = Host(euid=os.geteuid(), egid=os.getegid(), init_userns=init_userns, cgroup_binds=binds)
    plan = attempt("plan", build_plan, doc, bundle, rootfs, host) if os.path.isdir(rootfs) else None
    if plan is not None and plan.idmap is not None and plan.idmap_writer == "helper":
        from pyoci.linux.subid import check_idmap

        attempt("id maps in /etc/subuid and /etc/subgid", check_idmap, plan.idmap.uid_lines,
                plan.idmap.gid_lines)
    return out


def validate_bundle(bundle: str, ignored: list[str] | None = None) -> list[Problem]:
    """Every problem of the bundle's config.json, in stage order; [] when it
    would run here.  Unknown properties are not problems (the runtime-spec's
    Extensibility rule: create ignores them); after the schema stage they
    are removed, as create removes them, and their JSON paths added to
    *ignored*."""
    from pyoci.spec.load import _parse, _read

    path = os.path.join(bundle, "config.json")
    try:
        doc = _parse(_read(path, "read config"))
    except ConfigError as e:
        return [_from_error("load", e, None, "JSON document")]
    except PyociError as e:
        return [Problem("load", "$", "readable", str(e))]
    problems = schema_problems(doc)
    if isinstance(doc, dict):
        from pyoci.spec import _validator

        paths = _validator.strip_unknown(doc)
        if ignored is not None:
            ignored.extend(paths)
    problems += check_problems(doc)
    if isinstance(doc, dict) and not problems:
        problems += host_problems(doc, bundle)
    elif isinstance(doc, dict):
        # The host stage needs a sound config; still report the rootfs.
        problems += [p for p in host_problems_light(doc, bundle)]
    return problems


def host_problems_light(doc: dict[str, Any], bundle: str) -> list[Problem]:
    """The host checks that hold for any config (the rootfs)."""
    root = doc.get("root")
    root_path = (root.get("path") if isinstance(root, dict) else None) or "rootfs"
    if not isinstance(root_path, str):
        return []
    rootfs = os.path.realpath(os.path.join(bundle, root_path))
    if os.path.isdir(rootfs):
        return []
    return [Problem("host", "$.root.path", "rootfs present", f"{rootfs} is not a directory",
                    show_value(root_path))]
