"""Compile pyoci's config.json JSON Schema into a straight-line Python validator.

Build-time only (never imported at run time)::

    python -m pyoci.spec.schemagen spec-fixtures/schema pyoci/spec/_validator.py

reads ``SCHEMA_DIR/config.schema.json`` and writes a stdlib-only module whose
``validate(doc)`` raises :class:`pyoci.errors.ConfigError` for the first
violation, with the JSON path of the offending value (``$.mounts[2].destination``).

The output is plain code: one function per ``$defs`` entry that holds an
object, one per inline object schema, and inline ``if`` statements for the
scalar rules; nothing walks the schema at run time.  The generator supports
exactly the keywords the schema uses and refuses any other, so a schema edit
that needs a new keyword fails loudly here instead of being ignored.

Supported: type (one name), enum and const (strings), pattern, minLength,
minimum, maximum, items, minItems, properties, required, dependentRequired,
additionalProperties (bool or schema), propertyNames, anyOf, $ref to
``#/$defs/NAME``.  Annotations (title, description, $comment, ...) are ignored.
A ``$defs`` entry with ``"x-pyoci-export": "NAME"`` also gets a public
``NAME(doc)`` validating a document of that shape at ``$``.

Unknown properties (keys an object schema with ``properties`` does not list,
where it has no ``additionalProperties``) are not errors: the runtime-spec's
Extensibility rule says runtimes MUST ignore them.  The generated module's
``strip_unknown(doc)`` (and ``strip_unknown_NAME`` for each export
``validate_NAME``) removes them from a validated document in place and
returns their JSON paths, so no later stage can trip over (or act on) a key
pyoci does not know, and ``--debug`` can name each one.

Integers are strict: ``true`` and ``1.0`` are not integers (Go's encoding/json,
which runc uses, rejects both).

The output imports no ``re`` (with ``enum`` it costs ~8 ms at start-up): each
``pattern`` becomes a hand-written predicate from ``PATTERN_PREDICATES``, keyed
by the exact pattern text, and a pattern without one is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

SCHEMA_FILE = "config.schema.json"

_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated"}
    | {"x-pyoci-export"}
)
_OBJECT_KEYWORDS = frozenset(
    {"properties", "required", "dependentRequired", "additionalProperties", "propertyNames"}
)
_ARRAY_KEYWORDS = frozenset({"items", "minItems"})
_STRING_KEYWORDS = frozenset({"pattern", "minLength"})
_NUMBER_KEYWORDS = frozenset({"minimum", "maximum"})
_OTHER_KEYWORDS = frozenset({"type", "enum", "const", "anyOf", "$ref", "$defs"})
_SUPPORTED = (
    _ANNOTATIONS | _OBJECT_KEYWORDS | _ARRAY_KEYWORDS | _STRING_KEYWORDS | _NUMBER_KEYWORDS | _OTHER_KEYWORDS
)
# Keywords that make a schema worth its own function when it appears inline.
_HOIST_KEYWORDS = frozenset(
    {"properties", "additionalProperties", "propertyNames", "dependentRequired", "anyOf"}
)

_TYPE_TESTS = {
    "string": ("not isinstance({v}, str)", "a string"),
    "integer": ("not isinstance({v}, int) or isinstance({v}, bool)", "an integer"),
    "boolean": ("not isinstance({v}, bool)", "a boolean"),
    "object": ("not isinstance({v}, dict)", "an object"),
    "array": ("not isinstance({v}, list)", "an array"),
}
_KEYWORDS_OF_TYPE = {
    "object": _OBJECT_KEYWORDS,
    "array": _ARRAY_KEYWORDS,
    "string": _STRING_KEYWORDS,
    "integer": _NUMBER_KEYWORDS,
}
_GUARD = {
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "string": "isinstance({v}, str)",
    "integer": "isinstance({v}, int) and not isinstance({v}, bool)",
}


class SchemaError(Exception):
    """The schema uses something this generator does not support."""


# The schema's patterns as pure-Python predicates: pattern text -> (NAME, body of
# ``def _match_NAME(s: str) -> bool``).
#
# JSON Schema patterns are ECMA-262 regular expressions that may match anywhere
# in the string.  Each of these is anchored by ^ and $, and ECMA's $ (without the
# "m" flag) matches only at the very end of the string, never before a final
# newline as Python's $ does.  The generated module's ``_only(text, chars)`` is
# true when every character of text, if any, is one of chars.
# tests/unit/test_patterns.py checks each predicate against Python's re.search
# with the final $ written as \Z (the ECMA meaning).
_DIGITS = "0123456789"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
PATTERN_PREDICATES: dict[str, tuple[str, str]] = {
    r"^1\.[0-3]\.(0|[1-9][0-9]*)([-+][0-9A-Za-z.+-]*)?$": (
        "oci_version",
        f"""\
    if len(s) < 5 or s[0] != "1" or s[1] != "." or s[2] not in "0123" or s[3] != ".":
        return False
    end = 5
    if s[4] != "0":
        if s[4] not in "123456789":
            return False
        while end < len(s) and s[end] in "{_DIGITS}":
            end += 1
    rest = s[end:]
    return not rest or (rest[0] in "-+" and _only(rest[1:], "{_DIGITS}{_UPPER}{_LOWER}.+-"))
""",
    ),
    r"^RLIMIT_[A-Z]+$": (
        "rlimit_type",
        f"""\
    return len(s) > 7 and s.startswith("RLIMIT_") and _only(s[7:], "{_UPPER}")
""",
    ),
    r"^[0-9, -]*$": (
        "cpu_list",
        f"""\
    return _only(s, "{_DIGITS}, -")
""",
    ),
    r"^[1-9][0-9]*[KMG]B$": (
        "page_size",
        f"""\
    if len(s) < 3 or s[0] not in "123456789" or s[-2:] not in ("KB", "MB", "GB"):
        return False
    return _only(s[1:-2], "{_DIGITS}")
""",
    ),
    r"^MB:[^\n]*$": (
        "mem_bw_schema",
        """\
    return s.startswith("MB:") and "\\n" not in s
""",
    ),
}


def _str_lit(text: str) -> str:
    """A double-quoted Python string literal (no f-string)."""
    return json.dumps(text, ensure_ascii=True)


def _key_segment(key: str) -> str:
    """JSON-path segment for an object key, the same way the runtime helper writes it."""
    if key.isidentifier():
        return "." + key
    return "['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"


@dataclass(frozen=True)
class _Path:
    """A JSON path under construction: literal text and Python expressions."""

    parts: tuple[tuple[bool, str], ...]

    def lit(self, text: str) -> _Path:
        return _Path((*self.parts, (False, text)))

    def expr(self, code: str) -> _Path:
        return _Path((*self.parts, (True, code)))

    def render(self) -> str:
        """Python expression evaluating to the path string."""
        if all(not is_expr for is_expr, _ in self.parts):
            return _str_lit("".join(text for _, text in self.parts))
        if len(self.parts) == 1:
            return self.parts[0][1]
        out = []
        for is_expr, text in self.parts:
            if is_expr:
                out.append("{" + text + "}")
            else:
                lit = _str_lit(text)[1:-1]
                out.append(lit.replace("{", "{{").replace("}", "}}"))
        return 'f"' + "".join(out) + '"'


class _Function:
    def __init__(self, name: str, header: str) -> None:
        self.name = name
        self.header = header
        self.body: list[str] = []
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


class _Generator:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        defs = schema.get("$defs", {})
        if not isinstance(defs, dict):
            raise SchemaError("$defs must be an object")
        self.defs: dict[str, dict[str, Any]] = defs
        self.functions: list[_Function] = []
        self.pending: list[tuple[_Function, dict[str, Any], str]] = []
        self.names: set[str] = set()
        self.def_functions: dict[str, str] = {}
        self.constants: list[str] = []
        self.enum_names: dict[tuple[str, ...], str] = {}
        self.pattern_names: dict[str, str] = {}
        self.predicates: list[str] = []
        self.keyset_names: dict[tuple[str, ...], str] = {}
        self.hoisted: dict[int, str] = {}

    # -- bookkeeping ---------------------------------------------------------

    def _unique(self, base: str) -> str:
        name = base
        n = 1
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    def _new_function(self, base: str, schema: dict[str, Any], where: str) -> str:
        name = self._unique(base)
        fn = _Function(name, f"def {name}(v: object, p: str) -> None:")
        self.functions.append(fn)
        self.pending.append((fn, schema, where))
        return name

    def _def_function(self, name: str) -> str:
        fname = self.def_functions.get(name)
        if fname is None:
            fname = self._new_function("_d_" + _slug(name), self.defs[name], name)
            self.def_functions[name] = fname
        return fname

    def _enum_const(self, values: list[Any], where: str) -> str:
        if not values or not all(isinstance(x, str) for x in values):
            raise SchemaError(f"{where}: only non-empty enums of strings are supported")
        key = tuple(values)
        name = self.enum_names.get(key)
        if name is None:
            name = f"_ENUM{len(self.enum_names) + 1}"
            self.enum_names[key] = name
            items = "".join(f"    {_str_lit(x)},\n" for x in values)
            self.constants.append(f"{name}_LIST = (\n{items})\n{name} = frozenset({name}_LIST)")
        return name

    def _pattern(self, pattern: Any, where: str) -> tuple[str, str]:
        """The constant holding *pattern* and the name of its predicate function."""
        if not isinstance(pattern, str) or pattern not in PATTERN_PREDICATES:
            raise SchemaError(
                f"{where}: no pure-Python predicate for pattern {pattern!r} "
                "(add one to PATTERN_PREDICATES in pyoci/spec/schemagen.py)"
            )
        slug, body = PATTERN_PREDICATES[pattern]
        func = "_match_" + slug
        const = self.pattern_names.get(pattern)
        if const is None:
            const = f"_PATTERN{len(self.pattern_names) + 1}"
            self.pattern_names[pattern] = const
            self.constants.append(f"{const} = {_str_lit(pattern)}")
            self.predicates.append(f"def {func}(s: str) -> bool:\n    # {const}: {pattern}\n{body}")
        return const, func

    def _keyset_const(self, keys: list[str]) -> str:
        key = tuple(keys)
        name = self.keyset_names.get(key)
        if name is None:
            name = f"_KEYS{len(self.keyset_names) + 1}"
            self.keyset_names[key] = name
            items = "".join(f"    {_str_lit(x)},\n" for x in keys)
            self.constants.append(f"{name} = frozenset((\n{items}))")
        return name

    def _resolve(self, ref: Any, where: str) -> str:
        prefix = "#/$defs/"
        if not isinstance(ref, str) or not ref.startswith(prefix) or ref[len(prefix) :] not in self.defs:
            raise SchemaError(f"{where}: unsupported or dangling $ref {ref!r}")
        return ref[len(prefix) :]

    def _inlinable(self, name: str, seen: frozenset[str] = frozenset()) -> bool:
        """A definition without object structure is pasted in place, not called."""
        if name in seen:
            return False
        schema = self.defs[name]
        if any(k in schema for k in _HOIST_KEYWORDS):
            return False
        if "$ref" in schema:
            return self._inlinable(self._resolve(schema["$ref"], name), seen | {name})
        return True

    # -- emission ------------------------------------------------------------

    def run(self) -> str:
        root = _Function("validate", "def validate(doc: object) -> None:")
        root.body.append('    """Raise ConfigError for the first way *doc* breaks the config.json schema."""')
        self.functions.append(root)
        self.names.add("validate")
        self.pending.append((root, self.schema, "root"))
        exports: list[str] = []
        for name, schema in self.defs.items():
            export = schema.get("x-pyoci-export")
            if export is None:
                continue
            if not isinstance(export, str) or not export.isidentifier() or export in self.names:
                raise SchemaError(f"{name}: bad x-pyoci-export {export!r}")
            self.names.add(export)
            fname = self._def_function(name)
            exports.append(
                f"def {export}(doc: object) -> None:\n"
                f'    """Raise ConfigError for the first way *doc* breaks $defs/{name}."""\n'
                f'    {fname}(doc, "$")\n'
            )
        while self.pending:
            fn, schema, where = self.pending.pop(0)
            is_root = fn.name == "validate"
            var = "doc" if is_root else "v"
            path = _Path(((False, "$"),)) if is_root else _Path(((True, "p"),))
            before = len(fn.body)
            self._emit(fn, schema, var, path, "    ", where, top=True)
            if len(fn.body) == before:
                fn.body.append("    return")
        parts = [fn.header + "\n" + "\n".join(fn.body) + "\n" for fn in self.functions]
        strip = _StripGenerator(self)
        exports.append(strip.entry("strip_unknown", self.schema, "root"))
        for name, schema in self.defs.items():
            export = schema.get("x-pyoci-export")
            if export is None:
                continue
            suffix = export[len("validate_"):] if export.startswith("validate_") else export
            public = "strip_unknown_" + suffix
            if public in self.names:
                raise SchemaError(f"{name}: {public} is taken")
            self.names.add(public)
            exports.append(strip.entry(public, schema, name))
        return "\n\n".join(self.constants) + "\n\n\n" + "\n\n".join(
            self.predicates + parts + strip.functions + exports)

    def _emit(
        self,
        fn: _Function,
        schema: Any,
        var: str,
        path: _Path,
        ind: str,
        where: str,
        top: bool = False,
        subject: str = "",
    ) -> None:
        if schema is True or schema == {}:
            return
        if not isinstance(schema, dict):
            raise SchemaError(f"{where}: a schema must be an object (false is not supported here)")
        unknown = set(schema) - _SUPPORTED
        if unknown:
            raise SchemaError(f"{where}: unsupported keyword(s) {sorted(unknown)}")
        if "$defs" in schema and not (top and where == "root"):
            raise SchemaError(f"{where}: $defs only at the root")
        if not top and any(k in schema for k in _HOIST_KEYWORDS):
            # One function per schema object, however often it is pasted in.
            fname = self.hoisted.get(id(schema), "")
            if not fname:
                fname = self.hoisted[id(schema)] = self._new_function("_s_" + _slug(where), schema, where)
            fn.body.append(f"{ind}{fname}({var}, {path.render()})")
            return
        out = fn.body
        if "$ref" in schema:
            name = self._resolve(schema["$ref"], where)
            if self._inlinable(name):
                self._emit(fn, self.defs[name], var, path, ind, name, subject=subject)
            else:
                out.append(f"{ind}{self._def_function(name)}({var}, {path.render()})")
        p = path.render()
        typ = schema.get("type")
        if typ is not None:
            if typ not in _TYPE_TESTS:
                raise SchemaError(f"{where}: unsupported type {typ!r}")
            test, what = _TYPE_TESTS[typ]
            out.append(f"{ind}if {test.format(v=var)}:")
            msg = _str_lit(subject + "must be " + what + ", not ")
            out.append(f"{ind}    raise ConfigError({p}, {msg} + _show({var}))")
        if "enum" in schema:
            const = self._enum_const(schema["enum"], where)
            guard = "" if typ == "string" else f"not isinstance({var}, str) or "
            out.append(f"{ind}if {guard}{var} not in {const}:")
            out.append(f"{ind}    raise ConfigError({p}, _one_of({_str_lit(subject)}, {const}_LIST, {var}))")
        if "const" in schema:
            value = schema["const"]
            if not isinstance(value, str):
                raise SchemaError(f"{where}: only string consts are supported")
            out.append(f"{ind}if {var} != {_str_lit(value)}:")
            msg = _str_lit(subject + "must be " + json.dumps(value) + ", not ")
            out.append(f"{ind}    raise ConfigError({p}, {msg} + _show({var}))")
        for group_type, keywords in _KEYWORDS_OF_TYPE.items():
            if not any(k in schema for k in keywords):
                continue
            if typ is not None and typ != group_type:
                raise SchemaError(f"{where}: {sorted(keywords & set(schema))} do not apply to type {typ}")
            inner = ind
            if typ is None:
                out.append(f"{ind}if {_GUARD[group_type].format(v=var)}:")
                inner = ind + "    "
            before = len(out)
            emit = getattr(self, f"_emit_{group_type}")
            emit(fn, schema, var, path, inner, where, subject)
            if len(out) == before and typ is None:
                out.append(f"{inner}pass")
        if "anyOf" in schema:
            branches = schema["anyOf"]
            if not isinstance(branches, list) or not branches:
                raise SchemaError(f"{where}: anyOf must be a non-empty array")
            names = [
                self._new_function("_a_" + _slug(where) + f"_{i}", branch, f"{where}_anyOf{i}")
                for i, branch in enumerate(branches)
            ]
            branch_tuple = f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"
            out.append(f"{ind}_any_of({var}, {p}, {branch_tuple})")

    def _emit_string(
        self, fn: _Function, schema: dict[str, Any], var: str, path: _Path, ind: str, where: str, subject: str
    ) -> None:
        p = path.render()
        if "minLength" in schema:
            n = schema["minLength"]
            if not isinstance(n, int) or n < 1:
                raise SchemaError(f"{where}: minLength must be a positive integer")
            msg = "must not be empty" if n == 1 else f"must be at least {n} characters long"
            fn.body.append(f"{ind}if len({var}) < {n}:")
            fn.body.append(f"{ind}    raise ConfigError({p}, {_str_lit(subject + msg)})")
        if "pattern" in schema:
            const, func = self._pattern(schema["pattern"], where)
            fn.body.append(f"{ind}if not {func}({var}):")
            fn.body.append(f"{ind}    raise ConfigError({p}, _mismatch({_str_lit(subject)}, {const}, {var}))")

    def _emit_integer(
        self, fn: _Function, schema: dict[str, Any], var: str, path: _Path, ind: str, where: str, subject: str
    ) -> None:
        lo = schema.get("minimum")
        hi = schema.get("maximum")
        for bound in (lo, hi):
            if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool)):
                raise SchemaError(f"{where}: minimum/maximum must be integers")
        p = path.render()
        if lo is not None and hi is not None:
            fn.body.append(f"{ind}if {var} < {lo} or {var} > {hi}:")
            msg = f"{subject}must be in the range {lo}..{hi}, not "
        elif lo is not None:
            fn.body.append(f"{ind}if {var} < {lo}:")
            msg = f"{subject}must be at least {lo}, not "
        else:
            fn.body.append(f"{ind}if {var} > {hi}:")
            msg = f"{subject}must be at most {hi}, not "
        fn.body.append(f"{ind}    raise ConfigError({p}, {_str_lit(msg)} + str({var}))")

    def _emit_array(
        self, fn: _Function, schema: dict[str, Any], var: str, path: _Path, ind: str, where: str, subject: str
    ) -> None:
        out = fn.body
        if "minItems" in schema:
            n = schema["minItems"]
            if not isinstance(n, int) or n < 1:
                raise SchemaError(f"{where}: minItems must be a positive integer")
            msg = "must not be empty" if n == 1 else f"must have at least {n} items"
            out.append(f"{ind}if len({var}) < {n}:")
            out.append(f"{ind}    raise ConfigError({path.render()}, {_str_lit(subject + msg)})")
        if "items" in schema:
            index = fn.var("i")
            item = fn.var("x")
            loop_at = len(out)
            out.append(f"{ind}for {index}, {item} in enumerate({var}):")
            item_path = path.lit("[").expr(index).lit("]")
            self._emit(fn, schema["items"], item, item_path, ind + "    ", where + "_item")
            if len(out) == loop_at + 1:
                del out[loop_at]

    def _emit_object(
        self, fn: _Function, schema: dict[str, Any], var: str, path: _Path, ind: str, where: str, subject: str
    ) -> None:
        out = fn.body
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
            raise SchemaError(f"{where}: required must be an array of strings")
        for key in required:
            out.append(f"{ind}if {_str_lit(key)} not in {var}:")
            out.append(f'{ind}    raise ConfigError({path.lit(_key_segment(key)).render()}, "is required")')
        dependent = schema.get("dependentRequired", {})
        if not isinstance(dependent, dict):
            raise SchemaError(f"{where}: dependentRequired must be an object")
        for key, needs in dependent.items():
            if not isinstance(needs, list) or not all(isinstance(k, str) for k in needs):
                raise SchemaError(f"{where}: dependentRequired values must be arrays of strings")
            for need in needs:
                out.append(f"{ind}if {_str_lit(key)} in {var} and {_str_lit(need)} not in {var}:")
                msg = _str_lit(f"is required when {key} is set")
                out.append(f"{ind}    raise ConfigError({path.lit(_key_segment(need)).render()}, {msg})")
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise SchemaError(f"{where}: properties must be an object")
        for key, sub in properties.items():
            item = fn.var("x")
            start = len(out)
            out.append(f"{ind}{item} = {var}.get({_str_lit(key)}, _MISSING)")
            out.append(f"{ind}if {item} is not _MISSING:")
            self._emit(fn, sub, item, path.lit(_key_segment(key)), ind + "    ", where + "_" + key)
            if len(out) == start + 2:
                del out[start:]
        names = schema.get("propertyNames")
        if names is not None:
            key_var = fn.var("k")
            start = len(out)
            out.append(f"{ind}for {key_var} in {var}:")
            key_path = path.expr(f"_key({key_var})")
            self._emit(fn, names, key_var, key_path, ind + "    ", where + "_key", subject="key ")
            if len(out) == start + 1:
                del out[start:]
        extra = schema.get("additionalProperties", True)
        if extra is not True and extra != {}:
            key_var = fn.var("k")
            item = fn.var("x")
            out.append(f"{ind}for {key_var}, {item} in {var}.items():")
            if properties:
                out.append(f"{ind}    if {key_var} in {self._keyset_const(list(properties))}:")
                out.append(f"{ind}        continue")
            sub_path = path.expr(f"_key({key_var})")
            if extra is False:
                out.append(f'{ind}    raise ConfigError({sub_path.render()}, "is not allowed here")')
            else:
                self._emit(fn, extra, item, sub_path, ind + "    ", where + "_value")


class _StripGenerator:
    """The ``strip_unknown`` walkers: one function per object schema that
    lists ``properties`` (or holds one that does), removing the keys it does
    not list and descending into the ones that can hold such objects."""

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen
        self.functions: list[str] = []
        self.names: dict[int, str] = {}
        self.structural: dict[int, bool] = {}

    def _deref(self, schema: Any, where: str) -> Any:
        seen: set[str] = set()
        while isinstance(schema, dict) and "$ref" in schema:
            name = self.gen._resolve(schema["$ref"], where)
            if name in seen:
                raise SchemaError(f"{where}: $ref cycle through {name}")
            seen.add(name)
            if set(schema) - _ANNOTATIONS - {"$ref"}:
                raise SchemaError(f"{where}: $ref beside other keywords is not supported by strip_unknown")
            schema = self.gen.defs[name]
        return schema

    def _known(self, schema: dict[str, Any], where: str) -> dict[str, Any]:
        """The keys an object schema lists: its properties and its anyOf branches'."""
        known = dict(schema.get("properties") or {})
        for i, branch in enumerate(schema.get("anyOf") or []):
            for key, sub in ((branch or {}).get("properties") or {}).items():
                if key not in known:
                    if self._has_structure(sub, f"{where}_anyOf{i}_{key}"):
                        raise SchemaError(f"{where}: an object property only an anyOf branch lists")
                    known[key] = sub
        return known

    def _has_structure(self, schema: Any, where: str) -> bool:
        """Whether a value of this schema can hold an object with listed properties."""
        schema = self._deref(schema, where)
        if not isinstance(schema, dict):
            return False
        key = id(schema)
        if key in self.structural:
            return self.structural[key]
        self.structural[key] = False        # (a cycle holds nothing new)
        found = bool(self._known(schema, where))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and self._has_structure(extra, where + "_value"):
            found = True
        if "items" in schema and self._has_structure(schema["items"], where + "_item"):
            found = True
        for key2, sub in self._known(schema, where).items():
            if self._has_structure(sub, f"{where}_{key2}"):
                found = True
        self.structural[key] = found
        return found

    def _leaf_keys(self, schema: Any, where: str) -> str | None:
        """For an object schema whose listed properties hold nothing to walk:
        the constant of its keys (checked inline, without a call)."""
        schema = self._deref(schema, where)
        if not isinstance(schema, dict) or schema.get("additionalProperties", True) not in (True, {}):
            return None
        known = self._known(schema, where)
        if not known or "items" in schema:
            return None
        if any(self._has_structure(sub, f"{where}_{k}") for k, sub in known.items()):
            return None
        return self.gen._keyset_const(list(known))

    def _call(self, sub: Any, where: str, value: str, path: str, ind: str) -> list[str]:
        """Lines that walk ``value`` (of schema ``sub``) at ``path`` (an f-string body)."""
        leaf = self._leaf_keys(sub, where)
        if leaf is not None:
            return [f"{ind}if isinstance({value}, dict) and not {leaf}.issuperset({value}):",
                    f'{ind}    _drop({value}, {leaf}, f"{path}", out)']
        return [f'{ind}{self.function(sub, where)}({value}, f"{path}", out)']

    def function(self, schema: Any, where: str) -> str:
        """The walker for values of ``schema`` (which has structure)."""
        if isinstance(schema, dict) and "$ref" in schema:
            where = self.gen._resolve(schema["$ref"], where)
        schema = self._deref(schema, where)
        name = self.names.get(id(schema))
        if name:
            return name
        name = self.gen._unique("_u_" + _slug(where))
        self.names[id(schema)] = name
        body: list[str] = []
        known = self._known(schema, where)
        extra = schema.get("additionalProperties", True)
        if known or extra is not True:
            body.append("    if not isinstance(v, dict):")
            body.append("        return")
        if known and (extra is True or extra == {}):
            const = self.gen._keyset_const(list(known))
            body.append(f"    if not {const}.issuperset(v):")
            body.append(f"        _drop(v, {const}, p, out)")
        for key, sub in known.items():
            if not self._has_structure(sub, f"{where}_{key}"):
                continue
            x = "x_" + _slug(key)
            body.append(f"    {x} = v.get({_str_lit(key)})")
            body.append(f"    if {x} is not None:")
            seg = _str_lit(_key_segment(key))[1:-1].replace("{", "{{").replace("}", "}}")
            body += self._call(sub, f"{where}_{key}", x, "{p}" + seg, "        ")
        if isinstance(extra, dict) and self._has_structure(extra, where + "_value"):
            body.append("    for k, x in v.items():")
            if known:
                body.append(f"        if k not in {self.gen._keyset_const(list(known))} and x is not None:")
            else:
                body.append("        if x is not None:")
            body += self._call(extra, where + "_value", "x", "{p}{_key(k)}", "            ")
        if "items" in schema and self._has_structure(schema["items"], where + "_item"):
            body.append("    if isinstance(v, list):")
            body.append("        for i, x in enumerate(v):")
            body += self._call(schema["items"], where + "_item", "x", "{p}[{i}]", "            ")
        if not body:
            body.append("    return")
        header = f"def {name}(v: object, p: str, out: list[str]) -> None:\n"
        self.functions.append(header + "\n".join(body) + "\n")
        return name

    def entry(self, public: str, schema: Any, where: str) -> str:
        head = (
            f"def {public}(doc: object) -> list[str]:\n"
            f'    """Remove the properties of *doc* that {where} does not list (in place, at any\n'
            f'    depth) and return their JSON paths: the runtime-spec says to ignore them."""\n'
        )
        if not self._has_structure(schema, where):
            return head + "    return []\n"
        fname = self.function(schema, where)
        return head + f'    out: list[str] = []\n    {fname}(doc, "$", out)\n    return out\n'



def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in text)
    return out.strip("_") or "x"


_PRELUDE = r"""from __future__ import annotations

from pyoci.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_MISSING: object = object()


def _only(text: str, chars: str) -> bool:
    # True if every character of text (there may be none) is one of chars.
    return not text.strip(chars)


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _key(key: str) -> str:
    if key.isidentifier():
        return "." + key
    return "['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _drop(obj: dict[str, object], known: frozenset[str], path: str, out: list[str]) -> None:
    for key in [k for k in obj if k not in known]:
        out.append(path + _key(key))
        del obj[key]


def _one_of(subject: str, options: tuple[str, ...], value: object) -> str:
    return subject + "must be one of: " + ", ".join(options) + "; not " + _show(value)


def _mismatch(subject: str, pattern: str, value: str) -> str:
    return subject + "must match " + pattern + ", not " + _show(value)


def _any_of(value: object, path: str, branches: tuple[Callable[[object, str], None], ...]) -> None:
    reasons = []
    for branch in branches:
        try:
            branch(value, path)
        except ConfigError as err:
            field = err.field or path
            detail = err.msg
            prefix = "config.json " + field + ": "
            if detail.startswith(prefix):
                detail = detail[len(prefix):]
            where = field[len(path):] if field.startswith(path) else field
            where = where[1:] if where.startswith(".") else where
            reasons.append(where + " " + detail if where else detail)
        else:
            return
    raise ConfigError(path, "must satisfy one of: " + "; or ".join(reasons))
"""


def generate(schema_dir: str) -> str:
    """Return the validator module's source for the schema in *schema_dir*."""
    schema_path = os.path.join(schema_dir, SCHEMA_FILE)
    with open(schema_path, "rb") as f:
        raw = f.read()
    schema = json.loads(raw)
    if not isinstance(schema, dict):
        raise SchemaError("the schema must be an object")
    body = _Generator(schema).run()
    digest = hashlib.sha256(raw).hexdigest()
    header = (
        f"# Generated by pyoci.spec.schemagen from {SCHEMA_FILE} (sha256 {digest}).\n"
        "# Do not edit: change the schema and run\n"
        "#     python -m pyoci.spec.schemagen spec-fixtures/schema pyoci/spec/_validator.py\n"
        "# ruff: noqa: E501\n"
        "# fmt: off\n"
        '"""config.json validator generated from pyoci\'s JSON Schema (see pyoci.spec.schemagen)."""\n\n'
    )
    return header + _PRELUDE + "\n\n" + body


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pyoci.spec.schemagen SCHEMA_DIR OUT.py", file=sys.stderr)
        return 2
    schema_dir, out = args
    try:
        source = generate(schema_dir)
    except (OSError, ValueError, SchemaError) as err:
        print(f"schemagen: {err}", file=sys.stderr)
        return 1
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(source)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
